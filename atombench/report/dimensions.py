"""The former home of the tables across the evaluation's dimensions, kept so that outside code importing from it
keeps working. Their homes now: :mod:`atombench.report.fairness` (protocols: the fairness tables),
:mod:`atombench.report.robustness` (labels and augmentations: DD-Ranking's robustness scores),
:mod:`atombench.report.budget` (distillation budgets: snapshots) and :mod:`atombench.report.views` (which value of
each dimension the main tables show). Import from those.
"""

from __future__ import annotations

from .budget import _fmt_time, budget_points, budget_tables
from .fairness import _rank_text, _ranks, fairness_tables, training_extras
from .robustness import _settings_table, robustness_tables
from .views import apply_view, default_view, final_sets

__all__ = ["_fmt_time", "_rank_text", "_ranks", "_settings_table", "apply_view", "budget_points", "budget_tables",
           "default_view", "fairness_tables", "final_sets", "robustness_tables", "training_extras"]
