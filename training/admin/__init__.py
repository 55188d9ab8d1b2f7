"""The model owners' admin: model versions with their evidence, training runs, frozen datasets, the promotion history.

Every write goes through training.services or registry.services (the same services the `retrain` command, Celery
and the API use); the views here only check the role, parse the request, call one service and report what happened.
Everything else is read-only, for everyone, superusers included: the registry mirror, the datasets and the audit trail
are history, and history edited by hand in a form is no longer evidence.

Who may do what (registry.roles for model owners, predictions.roles for curators): model owners (and superusers) see
and act; curators see only the "coins whose year moved" page (their work list after a re-score) and the suspect
labels (verified years the held-out answers of the last training run contradict); collectors and anonymous visitors
never get past the admin's login / 403.

Where things are: one module per ModelAdmin (model_versions, training_runs, dataset_versions, promotions, periodic_tasks); the pages
they add in views/ (one AdminPageView each); the list actions and the verbs behind the buttons in actions.py; forms.py;
presenters.py (numbers, badges, the typed metrics of training.schemas made printable). Reads are training.selectors.
Importing this package registers the five ModelAdmins (sweeps: hyperparameter sweeps), and
replaces django-celery-beat's PeriodicTaskAdmin by ScheduleAdmin (periodic_tasks: whether a scheduler runs them).
"""

from .dataset_versions import DatasetVersionAdmin
from .model_versions import ModelVersionAdmin
from .periodic_tasks import ScheduleAdmin
from .promotions import PromotionAdmin
from .sweeps import SweepAdmin
from .training_runs import TrainingRunAdmin

__all__ = ["DatasetVersionAdmin", "ModelVersionAdmin", "PromotionAdmin", "ScheduleAdmin", "SweepAdmin", "TrainingRunAdmin"]
