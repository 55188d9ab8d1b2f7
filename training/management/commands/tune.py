"""`manage.py tune`: a hyperparameter sweep (Optuna TPE + pruning) over a YAML search space, then the best
configuration trained as a normal run (a version, compared with Production; promoted only with AUTO_PROMOTE).

Without a broker (the embedded default) the trials run here, one after another, and so does the best configuration's
run; with one (CELERY_BROKER_URL) the trials go to the training workers and this command follows the progress
(``--no-wait``: it only queues).
"""

from __future__ import annotations

import time
from argparse import ArgumentParser

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from training.errors import TrainingBusy
from training.models import DatasetVersion, Sweep
from training.services.runs import training_run_execute
from training.services.sweep_trials import sweep_finalise, sweep_trial_execute
from training.services.sweeps import sweep_execute, sweep_progress, sweep_start

from .train import add_set_argument, overrides_of

POLL_SECONDS = 5.0


def dataset_find(value: str) -> DatasetVersion:
    """A frozen dataset by id or by the start of its content hash (at least 6 characters)."""
    if value.isdigit():
        found = DatasetVersion.objects.filter(pk=int(value)).first()
    elif len(value) >= 6:
        found = DatasetVersion.objects.filter(content_hash__startswith=value).order_by("-created_at").first()
    else:
        found = None
    if found is None:
        raise CommandError(f"--dataset {value}: no frozen dataset with that id or content hash prefix (>= 6 chars)")
    return found


class Command(BaseCommand):
    help = (
        "Hyperparameter sweep: N Optuna trials (TPE sampler, median/Hyperband pruning on per-epoch validation MAE) "
        "over the YAML search space, each cross-validated on the same folds; then the best configuration trains as a "
        "normal run, registered and compared with Production."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--space", default="configs/tune.yaml", help="YAML search space (default %(default)s)")
        parser.add_argument("--trials", type=int, required=True, help="number of trials")
        parser.add_argument("--timeout", type=int, default=None, help="seconds after which no new trial starts")
        parser.add_argument("--dataset", default=None, help="frozen dataset id or content hash (default: today's)")
        parser.add_argument("--no-train", action="store_true", help="do not train the best configuration")
        parser.add_argument("--no-wait", action="store_true", help="with a broker: queue the sweep and return")
        add_set_argument(parser, description="override base config values for every trial, e.g. --set folds=3")

    def handle(self, *args, **options) -> None:
        dataset = dataset_find(options["dataset"]) if options["dataset"] else None
        eager = bool(settings.CELERY_TASK_ALWAYS_EAGER)
        try:
            sweep = sweep_start(
                trials=options["trials"],
                space_path=options["space"],
                timeout=options["timeout"],
                dataset=dataset,
                overrides=overrides_of(options),
                train_best=not options["no_train"],
                enqueue=not eager,
            )
        except ValidationError as error:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())) from None
        self.stdout.write(f"sweep #{sweep.pk}: {sweep.trials_wanted} trials, study {sweep.study_name}")
        if not eager:
            if not options["no_wait"]:
                sweep = self._follow(sweep)
            self._report(sweep)
            return
        sweep = sweep_execute(sweep_id=sweep.pk, dispatch=False)
        for index in range(sweep.trials_wanted):
            state = sweep_trial_execute(sweep_id=sweep.pk, index=index, finalise=False)
            self.stdout.write(f"  trial task {index + 1}: {state:<8}  {sweep_progress(sweep).text}")
        sweep = sweep_finalise(sweep_id=sweep.pk, enqueue=False)
        self._report(sweep)
        if sweep.training_run_id:
            self.stdout.write(f"training the best configuration as run #{sweep.training_run_id} ...")
            try:
                run = training_run_execute(run_id=sweep.training_run_id, progress=True)
            except TrainingBusy as busy:
                raise CommandError(
                    f"{busy} The best configuration's run #{sweep.training_run_id} stays queued."
                ) from None
            self.stdout.write(f"run #{run.pk}: {run.status} {run.verdict} {run.error}".rstrip())
            comparison = run.comparison or {}
            if comparison.get("reason"):
                self.stdout.write(f"comparison with Production: {comparison['reason']}")

    def _follow(self, sweep: Sweep) -> Sweep:
        last = ""
        while sweep.status in (Sweep.Status.QUEUED, Sweep.Status.RUNNING):
            text = sweep_progress(sweep).text
            if text != last:
                self.stdout.write(f"  {sweep.status}: {text}")
                last = text
            time.sleep(POLL_SECONDS)
            sweep.refresh_from_db()
        return sweep

    def _report(self, sweep: Sweep) -> None:
        sweep.refresh_from_db()
        self.stdout.write(f"sweep #{sweep.pk} {sweep.status}: {sweep_progress(sweep).text} {sweep.error}".rstrip())
        if sweep.best_value is not None:
            default = f"{sweep.default_value:.2f}" if sweep.default_value is not None else "— (pruned or failed)"
            self.stdout.write(
                f"best CV MAE {sweep.best_value:.2f} y (trial {sweep.best_trial}) vs the default configuration "
                f"{default} y on the same folds; best parameters: {sweep.best_params}"
            )
