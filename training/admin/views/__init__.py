"""The training admin's own pages, a class each on one AdminPageView (views/base.py), grouped by what they serve:
promotion.py (Promote, Roll back), rescore.py (Re-score, coins whose year moved), artifacts.py (the run's plots),
training.py (Start training, Cancel), monitoring.py (live accuracy and input drift), compare.py (any two versions side by side), suspects.py (the curators'
suspect labels)."""

from .artifacts import ArtifactView, version_plots
from .base import AdminPageView, rollback_target
from .compare import CompareVersionsView
from .monitoring import MonitoringView
from .promotion import PromoteView, RollbackView
from .rescore import MoversView, RescoreView
from .suspects import SuspectLabelsView
from .training import CancelTrainingView, StartTrainingView

__all__ = [
    "AdminPageView",
    "ArtifactView",
    "CancelTrainingView",
    "CompareVersionsView",
    "MonitoringView",
    "MoversView",
    "PromoteView",
    "RescoreView",
    "RollbackView",
    "StartTrainingView",
    "SuspectLabelsView",
    "rollback_target",
    "version_plots",
]
