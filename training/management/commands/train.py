"""`manage.py train`: one K-fold training run, synchronously in this process (no broker needed).

Also home of the small text tables the training commands print (retrain and evaluate import them).
"""

from __future__ import annotations

import math
from argparse import ArgumentParser
from collections.abc import Mapping, Sequence

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from training.errors import TrainingBusy
from training.models import TrainingRun
from training.selectors import labelled_coins
from training.services.runs import training_run_execute, training_run_start

METRIC_ROWS = [
    # key, label, format
    ("mae", "MAE (years)", "{:.2f}"),
    ("mse", "MSE", "{:.1f}"),
    ("r2", "R²", "{:.3f}"),
    ("within_5", "within ±5 y", "{:.1%}"),
    ("within_10", "within ±10 y", "{:.1%}"),
]


def fmt(value, pattern: str = "{:.2f}") -> str:
    """A number for a table cell; '—' for missing / NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    try:
        return pattern.format(value)
    except (TypeError, ValueError):
        return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain aligned text table (first column left, the rest right)."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def overrides_of(options: Mapping) -> list[str]:
    """--set a=1 b=2 --set c=3 -> ["a=1", "b=2", "c=3"]."""
    return [item for group in options.get("overrides") or [] for item in group]


def add_set_argument(
    parser: ArgumentParser,
    *,
    description: str = "override config values (parsed as YAML), e.g. --set epochs=10 folds=3; repeatable",
) -> None:
    """The repeatable ``--set KEY=VALUE ...`` option of every command that trains; read it with overrides_of()."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        nargs="+",
        metavar="KEY=VALUE",
        help=description,
    )


def cv_summary(metrics: Mapping) -> str:
    """Mean ± std over folds for the model beside the constant baseline, the spread check and the interval."""
    rows = []
    for key, label, pattern in METRIC_ROWS:
        model = f"{fmt(metrics.get(key), pattern)} ± {fmt(metrics.get(f'{key}_std'), pattern)}"
        baseline = (
            f"{fmt(metrics.get(f'baseline_{key}'), pattern)} ± {fmt(metrics.get(f'baseline_{key}_std'), pattern)}"
        )
        rows.append([label, model, baseline])
    text = table(["metric (mean ± std over folds)", "model", "constant baseline (median year)"], rows)
    text += (
        f"\nspread: std of predictions {fmt(metrics.get('pred_std'), '{:.1f}')} vs std of true years "
        f"{fmt(metrics.get('true_std'), '{:.1f}')}"
        f"\ninterval coverage: {fmt(metrics.get('interval_coverage'), '{:.1%}')} "
        f"(stated {fmt((metrics.get('interval') or {}).get('level'), '{:.0%}')}, typical ± "
        f"{fmt(metrics.get('interval_halfwidth'), '{:.1f}')} years)"
    )
    if metrics.get("soup_served") is not None:
        served = "the fold models averaged into one" if metrics["soup_served"] else "the ensemble of the fold models"
        text += (
            f"\nserves {served}: exact on the holdout {fmt(metrics.get('soup_holdout_exact'), '{:.1%}')} averaged, "
            f"{fmt(metrics.get('folds_ensemble_holdout_exact'), '{:.1%}')} ensemble"
        )
    return text


def fold_table(metrics: Mapping) -> str:
    folds = metrics.get("folds") or []
    baselines = metrics.get("fold_baseline_metrics") or [{}] * len(folds)
    rows = [
        [
            str(i),
            fmt(f.get("mae")),
            fmt(b.get("mae")),
            fmt(f.get("mse"), "{:.1f}"),
            fmt(f.get("r2"), "{:.3f}"),
            fmt(f.get("within_5"), "{:.1%}"),
            fmt(f.get("within_10"), "{:.1%}"),
        ]
        for i, (f, b) in enumerate(zip(folds, baselines, strict=False), start=1)
    ]
    return table(["fold", "MAE", "baseline MAE", "MSE", "R²", "±5 y", "±10 y"], rows)


def comparison_table(comparison: Mapping) -> str:
    """Candidate vs Production on the evaluation set, MAE by decade, MAE on corrected coins, and the verdict."""
    cand = comparison.get("candidate") or {}
    prod = comparison.get("production") or {}
    lines = [
        f"Evaluation set: {comparison.get('evaluation_count', 0)} held-out coins "
        f"(dataset #{comparison.get('evaluation_dataset')})"
    ]
    rows = []
    for key, label, pattern in METRIC_ROWS:
        c, p = cand.get(key), prod.get(key) if prod else None
        delta_pattern = pattern.replace("{:", "{:+")
        delta = fmt(c - p, delta_pattern) if isinstance(c, int | float) and isinstance(p, int | float) else "—"
        rows.append([label, fmt(c, pattern), fmt(p, pattern), delta])
    corrected = comparison.get("corrected") or {}
    c, p = corrected.get("candidate_mae"), corrected.get("production_mae")
    rows.append(
        [
            f"MAE on {corrected.get('count', 0)} corrected coins",
            fmt(c),
            fmt(p),
            fmt(c - p, "{:+.2f}") if isinstance(c, int | float) and isinstance(p, int | float) else "—",
        ]
    )
    head = [
        "",
        f"candidate v{cand.get('version', '?')}",
        f"production v{prod.get('version', '—') if prod else '—'}",
        "Δ",
    ]
    lines.append(table(head, rows))
    decades = sorted(set(cand.get("mae_by_decade") or {}) | set(prod.get("mae_by_decade") or {} if prod else set()))
    if decades:
        counts = cand.get("decade_counts") or {}
        decade_rows = [
            [
                f"{d}s",
                str(counts.get(d, "")),
                fmt((cand.get("mae_by_decade") or {}).get(d)),
                fmt((prod.get("mae_by_decade") or {}).get(d) if prod else None),
            ]
            for d in decades
        ]
        lines.append("MAE by decade (of the true year):")
        lines.append(table(["decade", "coins", "candidate", "production"], decade_rows))
    lines.append(f"Verdict: {str(comparison.get('verdict', '')).upper()} — {comparison.get('reason', '')}")
    return "\n".join(lines)


class Command(BaseCommand):
    help = (
        "Train the coin-year model now, in this process: freeze the labelled coins as a dataset version, K-fold "
        "train with the config (configs/default.yaml unless --config), log to MLflow, register a new version and "
        "compare it with Production. Prints the per-fold table, mean ± std of MAE/MSE/R²/±5/±10 beside the constant "
        "baseline, the spread of the predictions, the interval coverage and the version registered. The very first "
        "version becomes Production; later ones are only recommended or rejected (promote them in the admin)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--config", metavar="PATH.yaml", help="training config (default: settings.TRAINING_CONFIG_PATH)"
        )
        add_set_argument(parser)

    def handle(self, *args, **options) -> None:
        try:
            run = training_run_start(overrides=overrides_of(options), config_path=options["config"], enqueue=False)
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        self.stdout.write(f"Training run #{run.pk}: {labelled_coins().count()} labelled coins ...")
        run = execute_or_fail(self, run)
        report_run(self, run)
        if (run.comparison or {}).get("production"):
            self.stdout.write("")
            self.stdout.write(comparison_table(run.comparison))


def execute_or_fail(command: BaseCommand, run: TrainingRun, *, auto_promote: bool | None = None) -> TrainingRun:
    """Run synchronously in this process with progress bars (its folds too, even with a broker); a busy lock or a
    failed / cancelled run is a CommandError."""
    try:
        run = training_run_execute(run_id=run.pk, progress=True, auto_promote=auto_promote, fold_parallel=False)
    except TrainingBusy as busy:
        TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED).update(
            status=TrainingRun.Status.CANCELLED, error=f"not started: {busy}"
        )
        raise CommandError(str(busy)) from busy
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise CommandError(f"Training run #{run.pk} {run.status}: {run.error}")
    return run


def report_run(command: BaseCommand, run: TrainingRun) -> None:
    metrics = run.metrics or {}
    out = command.stdout
    if not metrics:  # fine-tune discarded before anything was logged
        out.write(command.style.WARNING(f"Run #{run.pk}: {run.verdict or run.status} — {run.error}"))
        return
    out.write("")
    out.write(fold_table(metrics))
    out.write("")
    out.write(cv_summary(metrics))
    version = getattr(run, "model_version", None)
    if version is not None:
        out.write("")
        out.write(
            f"Registered {version.name} v{version.version}"
            + (" — now in production" if version.is_production else "")
            + f" (verdict: {run.verdict or '—'}; MLflow run {run.mlflow_run_id})"
        )
    if metrics.get("collapsed"):
        out.write(
            command.style.ERROR(
                f"!!! WARNING: predictions collapse toward the mean (std {fmt(metrics.get('pred_std'), '{:.1f}')} vs "
                f"true {fmt(metrics.get('true_std'), '{:.1f}')}) !!!"
            )
        )
    if metrics.get("beats_baseline") is False:
        out.write(
            command.style.ERROR(
                f"!!! WARNING: the model does NOT beat the constant baseline (MAE {fmt(metrics.get('mae'))} vs "
                f"baseline {fmt(metrics.get('baseline_mae'))}) !!!"
            )
        )
    else:
        ratio = (metrics.get("mae") or 0) / metrics["baseline_mae"] if metrics.get("baseline_mae") else None
        out.write(
            command.style.SUCCESS(f"Beats the constant baseline: MAE ratio model/baseline {fmt(ratio, '{:.3f}')}")
        )
