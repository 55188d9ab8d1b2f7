"""`manage.py retrain`: the scheduled retraining, now, synchronously, with the comparison table."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from registry.selectors import production_version_registered
from training.models import TrainingRun
from training.selectors import labelled_coins
from training.services.runs import training_run_start

from .train import add_set_argument, comparison_table, execute_or_fail, overrides_of, report_run


class Command(BaseCommand):
    help = (
        "Retrain now (what the scheduler does, without waiting for enough new labels): freeze the labels, K-fold "
        "train, register a new version and compare it with Production on the held-out evaluation set and on the "
        "coins corrected since Production was trained. Prints the comparison table (MAE, MSE, R², ±5/±10, MAE by "
        "decade, MAE on corrected coins) and the verdict: better by PROMOTION_MARGIN_YEARS -> recommended (alias "
        "staging; promoted with --auto-promote or AUTO_PROMOTE=true), otherwise rejected and never promoted. "
        "--fine-tune starts from Production's weights for fine_tune_epochs and discards the candidate if it regresses. "
        "Exits non-zero when the run fails or is cancelled."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--auto-promote",
            action="store_true",
            help="promote the candidate if it is recommended (as AUTO_PROMOTE=true)",
        )
        parser.add_argument(
            "--fine-tune", action="store_true", help="start from Production's fold weights (fine_tune_epochs epochs)"
        )
        add_set_argument(parser)

    def handle(self, *args, auto_promote: bool, fine_tune: bool, **options) -> None:
        production = production_version_registered()
        try:
            run = training_run_start(overrides=overrides_of(options), fine_tune=fine_tune, enqueue=False)
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        self.stdout.write(
            f"Retraining (run #{run.pk}{', fine-tuning' if fine_tune else ''}): "
            f"{labelled_coins().count()} labelled coins, Production is "
            f"{'v' + str(production) if production is not None else 'not set yet'} ..."
        )
        run = execute_or_fail(self, run, auto_promote=True if auto_promote else None)
        report_run(self, run)
        self.stdout.write("")
        if run.comparison:
            self.stdout.write(comparison_table(run.comparison))
        style = {
            TrainingRun.Verdict.PROMOTED: self.style.SUCCESS,
            TrainingRun.Verdict.RECOMMENDED: self.style.SUCCESS,
        }.get(run.verdict, self.style.WARNING)
        now = production_version_registered()
        self.stdout.write(
            style(
                f"Run #{run.pk}: {run.verdict or run.status}. Production is v{now}."
                + (f" ({run.error})" if run.error else "")
            )
        )
