"""`manage.py evaluate`: score a registered version on a labelled folder or on the evaluation set."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from registry import gateway
from training.ml.data import read_labels_csv
from training.models import DatasetVersion
from training.services.comparison import model_version_evaluate
from training.services.datasets import dataset_freeze, dataset_samples

from .train import METRIC_ROWS, fmt, table


class Command(BaseCommand):
    help = (
        "Evaluate a registered model version through the serving path (gateway.predictor_load + the one "
        "preprocessing function): prints MAE, MSE, R², share within ±5 / ±10 years and the error-by-decade table, "
        "and logs them to MLflow as an evaluation run. --data DIR reads DIR/labels.csv (front, back, year); "
        "without it, the held-out evaluation dataset (frozen now) is used."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--model-version", type=int, required=True, metavar="N", help="registered version number")
        parser.add_argument(
            "--data", type=Path, metavar="DIR", help="folder with labels.csv (default: the evaluation set)"
        )
        parser.add_argument("--no-log", action="store_true", help="do not log the evaluation to MLflow")

    def handle(self, *args, model_version: int, data: Path | None, no_log: bool, **options) -> None:
        tracking = gateway.tracking()
        name = settings.MLFLOW_MODEL_NAME
        if model_version not in tracking.list_versions(name):
            raise CommandError(
                f"{name} has no version {model_version} (versions: {tracking.list_versions(name) or 'none'})."
            )
        if data is not None:
            try:
                samples, errors = read_labels_csv(data)
            except (FileNotFoundError, ValueError) as error:
                raise CommandError(str(error)) from error
            for error in errors:
                self.stderr.write(f"skipped {error}")
            source = str(data)
        else:
            dataset = dataset_freeze(kind=DatasetVersion.Kind.EVALUATION)
            samples = dataset_samples(dataset=dataset)
            source = f"evaluation dataset #{dataset.pk} ({dataset.content_hash[:10]})"
        if not samples:
            raise CommandError(f"No labelled coins to evaluate on in {source}.")
        self.stdout.write(f"Evaluating {name} v{model_version} on {len(samples)} coins of {source} ...")
        result = model_version_evaluate(version=model_version, samples=samples, progress=True)
        metrics = result["metrics"]
        self.stdout.write(
            table(
                ["metric", f"v{model_version}"],
                [[label, fmt(metrics.get(key), pattern)] for key, label, pattern in METRIC_ROWS],
            )
        )
        self.stdout.write(
            f"interval coverage {fmt(metrics.get('interval_coverage'), '{:.1%}')}; std of predictions "
            f"{fmt(metrics.get('pred_std'), '{:.1f}')} vs true {fmt(metrics.get('true_std'), '{:.1f}')}"
        )
        self.stdout.write("Error by decade (of the true year):")
        self.stdout.write(
            table(
                ["decade", "coins", "MAE"],
                [[f"{d}s", str(row["count"]), fmt(row["mae"])] for d, row in result["mae_by_decade"].items()],
            )
        )
        if not no_log:
            run_id = tracking.log_evaluation(
                None,
                {**metrics, "mae_by_decade": {d: row["mae"] for d, row in result["mae_by_decade"].items()}},
                {"evaluation.json": {k: v for k, v in result.items() if k != "predictions"}},
                model_name=name,
                run_name=f"evaluate {name} v{model_version}",
                tags={"coinsite.model_version": model_version, "coinsite.data": source[:250]},
            )
            self.stdout.write(f"Logged to MLflow run {run_id}.")
