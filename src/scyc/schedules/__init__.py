"""LR schedules for iterative pruning: across-round policies x within-round shapes."""

from scyc.foundations.registry import import_submodules
from scyc.schedules.policies import POLICIES, MaxLRPolicy, MeasuredPolicy, s_curve
from scyc.schedules.schedule import Schedule, build_schedule
from scyc.schedules.shapes import SHAPES, Shape

import_submodules("scyc.schedules")

__all__ = ["POLICIES", "SHAPES", "MaxLRPolicy", "MeasuredPolicy", "Schedule", "Shape", "build_schedule", "s_curve"]
