"""`manage.py pretrain`: train the base date reader on generated coins and log it to MLflow with its lineage.

Every training with ``init_from: base`` (the default of configs/default.yaml) starts from the file this writes,
training/ml/base/date_reader.pt (committed, under 1 MB in half precision, its lineage JSON beside it), so a fresh
clone never pretrains and nothing is downloaded.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mlflow
import yaml
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from registry.gateway import experiment_ready
from training.ml import pretrain as ml_pretrain

from .train import add_set_argument, overrides_of

BASE_EXPERIMENT = "coin-year-base"


def _code_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Command(BaseCommand):
    help = (
        "Pretrain the base date reader on generated coins (count, seed and config from configs/pretrain.yaml, "
        "--set key=value to override), log it to MLflow (experiment coin-year-base) with its lineage, and write "
        "the weights every `init_from: base` training starts from."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--manifest", default=str(ml_pretrain.DEFAULT_MANIFEST), help="the YAML manifest")
        parser.add_argument("--out", default=str(ml_pretrain.BASE_WEIGHTS), help="where to write the weights")
        add_set_argument(parser)

    def handle(self, *args, **options) -> None:
        overrides = {}
        for item in overrides_of(options):
            key, sep, raw = item.partition("=")
            if not sep:
                raise CommandError(f"--set {item!r} must look like key=value")
            overrides[key.strip()] = yaml.safe_load(raw)
        try:
            config = ml_pretrain.PretrainConfig.load(options["manifest"], overrides)
        except (TypeError, ValueError) as error:
            raise CommandError(str(error)) from error
        commit = _code_commit()
        self.stdout.write(f"pretraining the base date reader: {config.count} coins, {config.steps} steps")
        net, lineage = ml_pretrain.pretrain(config, log=self.stdout.write)
        lineage["code_commit"] = commit
        out = ml_pretrain.save_base(net, lineage, Path(options["out"]))
        experiment_ready(BASE_EXPERIMENT)
        with mlflow.start_run(run_name="base-date-reader") as run:
            mlflow.log_params({f"manifest.{k}": v for k, v in lineage["manifest"].items()})
            mlflow.set_tags({"generator_version": lineage["generator_version"], "code_commit": commit})
            mlflow.log_metrics({f"base_{k}": float(v) for k, v in lineage["metrics"].items()})
            for point in lineage["history"]:
                mlflow.log_metrics(
                    {k: float(v) for k, v in point.items() if k in ("exact", "mae", "nll", "digits", "locate")},
                    step=int(point["step"]),
                )
            mlflow.log_artifact(str(out))
            mlflow.log_text(json.dumps(lineage, indent=1, default=str), "lineage.json")
        metrics = lineage["metrics"]
        self.stdout.write(
            self.style.SUCCESS(
                f"base reader written to {out} (MLflow run {run.info.run_id}): exact {metrics.get('exact', 0):.1%}, "
                f"MAE {metrics.get('mae', float('nan')):.2f} y (constant baseline {metrics.get('baseline_mae', 0):.1f})"
            )
        )
