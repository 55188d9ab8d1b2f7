"""The years a coin's date may take: the one range the whole project uses, without torch.

The database's check constraints, the forms and filters, the generator, the plots and TrainConfig's default label
range all read these two names, so widening the range is a change of one file (and a migration for the
constraints, which Django writes with the values it finds here).
"""

from __future__ import annotations

YEAR_MIN = 1700
YEAR_MAX = 2025
