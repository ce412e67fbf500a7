"""The paper's models: parameter counts, ReLU only, a masked forward/backward on 1- and 3-channel inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scyc.foundations.registry import ConfigError
from scyc.models import create_model
from scyc.pruning.masks import MaskSet


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_the_papers():
    kw = dict(num_classes=10, in_channels=3, image_size=(32, 32))
    assert count(create_model("vgg19", **kw)) == 20_040_522  # "about 20M"
    r20 = count(create_model("resnet20", width=16, shortcut="A", **kw))
    assert r20 == 269_722 and round(r20 / 1e6, 2) == 0.27  # option A: He et al.'s 0.27M
    assert count(create_model("resnet20", width=16, shortcut="B", **kw)) == 272_474
    assert count(create_model("resnet56", width=16, shortcut="A", **kw)) == 853_018  # He et al.: 0.85M
    imagenet = dict(num_classes=1000, in_channels=3, image_size=(224, 224))
    assert count(create_model("resnet50", small_input=False, **imagenet)) == 25_557_032  # timm's 25.6M


MODELS = [
    ("lenet5", {}),
    ("lenet300", {"hidden": [300, 100]}),
    ("vgg19", {}),
    ("resnet20", {"width": 16, "shortcut": "A"}),
    ("resnet20", {"width": 16, "shortcut": "B"}),
    ("resnet50", {"small_input": True}),
    ("resnet18", {"small_input": False}),  # model=timm model.name=resnet18
]


@pytest.mark.parametrize(
    "name,kw", MODELS, ids=[f"{n}{'-' + '-'.join(map(str, k.values())) if k else ''}" for n, k in MODELS]
)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 16, 16)], ids=["1x28x28", "3x16x16"])
def test_masked_forward_backward(name, kw, shape):
    torch.manual_seed(0)
    c, h, w = shape
    model = create_model(name, num_classes=7, in_channels=c, image_size=(h, w), **kw)
    acts = {
        type(m).__name__
        for m in model.modules()
        if "activation" in type(m).__module__ or "act" in type(m).__name__.lower()
    }
    assert acts <= {"ReLU"}, f"{name} uses {acts}"
    masks = MaskSet.from_model(model)
    masks.set_([torch.rand_like(m) > 0.5 for m in masks.masks])
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(2, c, h, w), torch.tensor([0, 6])
    out = model(x)
    assert out.shape == (2, 7)
    nn.functional.cross_entropy(out, y).backward()
    grads = [p.grad for p in masks.params]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    opt.step()
    masks.apply_()
    for p, m in zip(masks.params, masks.masks):
        assert torch.all(p[m == 0] == 0)
    assert 0.45 < masks.sparsity() < 0.55


def test_small_input_stem_and_timm_errors():
    m = create_model("resnet50", num_classes=200, in_channels=3, image_size=(64, 64), small_input=True)
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1) and isinstance(m.maxpool, nn.Identity)
    feats = m.forward_features(torch.randn(1, 3, 64, 64))
    assert feats.shape[-2:] == (8, 8)  # the 224-pixel stem would leave 2x2
    with pytest.raises(ConfigError, match="unknown model 'resnet_nope'.*timm"):
        create_model("resnet_nope", num_classes=2, in_channels=3, image_size=(32, 32))
    with pytest.raises(ConfigError, match="small_input=true needs a ResNet-style stem"):
        create_model("mobilenetv3_small_050", num_classes=2, in_channels=3, image_size=(32, 32), small_input=True)
    with pytest.raises(ConfigError, match="pretrained"):
        create_model("resnet18", num_classes=2, in_channels=3, image_size=(32, 32), small_input=False, pretrained=True)
    with pytest.raises(ConfigError, match="model=vgg19"):
        create_model("vgg19", num_classes=2, in_channels=3, image_size=(8, 8))
