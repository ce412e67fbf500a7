"""Analysis of a run: the weight-gradient distribution per round (``gradients``) and the figures (``figures``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scyc.analysis.figures import RunFiguresCallback, make_figures
from scyc.analysis.gradients import GradientAnalysis, GradientProbe
from scyc.lifecycle.callbacks import Callback

if TYPE_CHECKING:
    from scyc.config import AnalysisConfig

__all__ = ["GradientAnalysis", "GradientProbe", "RunFiguresCallback", "analysis_callbacks", "make_figures"]


def analysis_callbacks(cfg: AnalysisConfig) -> list[Callback]:
    """The callbacks the ``analysis`` config section asks for (gradient measurement first, figures last)."""
    callbacks: list[Callback] = []
    if cfg.grad_every_round:
        callbacks.append(GradientAnalysis(cfg))
    if cfg.figures:
        callbacks.append(RunFiguresCallback())
    return callbacks
