"""The predictions admin: the coin list as the curators' review queue (coins), the review desk (desk), the audit
trail of predictions and corrections (audit); filters and forms beside them. Importing the package registers them."""

from .audit import CorrectionAdmin, CorrectionInline, PredictionAdmin
from .base import ReadOnlyAdmin, ReadOnlyMixin
from .coins import CoinAdmin

__all__ = ["CoinAdmin", "CorrectionAdmin", "CorrectionInline", "PredictionAdmin", "ReadOnlyAdmin", "ReadOnlyMixin"]
