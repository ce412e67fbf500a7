"""Analysis of a run: the weight-gradient distribution per round (``gradients``) and the figures (``figures``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scyc.analysis.figures import RunFiguresCallback, make_figures
from scyc.analysis.gradients import GradientAnalysis, GradientProbe
from scyc.lifecycle.callbacks import Callback

__all__ = ["GradientAnalysis", "GradientProbe", "RunFiguresCallback", "analysis_callbacks", "make_figures"]


def analysis_callbacks(cfg: Mapping[str, Any]) -> list[Callback]:
    """The callbacks the ``analysis`` config section asks for (gradient measurement first, figures last)."""
    callbacks: list[Callback] = []
    if cfg.get("grad_every_round", True):
        callbacks.append(GradientAnalysis(cfg))
    if cfg.get("figures", True):
        callbacks.append(RunFiguresCallback())
    return callbacks
