"""Writes of the training side: freezing datasets, running training, comparing and promoting model versions.

The learning loop in one place. Admin actions, Celery tasks and management commands are thin and call these services;
everything that must hold (one training at a time, a failed run never touches Production, promotion moves the MLflow
alias and the mirror together) is enforced here and in the database, not by the callers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from predictions.models import Coin, Correction, Prediction
from predictions.roles import can_promote, can_train

from .models import DatasetVersion, ModelVersion, Promotion, TrainingRun

if TYPE_CHECKING:  # the ML engine is imported lazily: the web process must not pay for torch at import time
    from training.ml.config import TrainConfig
    from training.ml.data import CoinSample

logger = logging.getLogger(__name__)

PRODUCTION_ALIAS = "production"
STAGING_ALIAS = "staging"
# The registry's old stages map onto aliases: None -> no alias, Staging -> `staging`, Production -> `production`.
STAGE_ALIASES = {"None": None, "Staging": STAGING_ALIAS, "Production": PRODUCTION_ALIAS}
ERROR_MAX_CHARS = 500
EVAL_BATCH_SIZE = 32


class TrainingBusy(Exception):
    """Another training run holds the lock (its lease has not expired): this one stays queued."""

    def __init__(self, holder: TrainingRun | None) -> None:
        self.holder = holder
        if holder is None:
            message = "Another training run is in progress."
        else:
            beat = holder.heartbeat_at.isoformat(timespec="seconds") if holder.heartbeat_at else "never"
            message = f"Training run #{holder.pk} is in progress (last heartbeat {beat}); only one runs at a time."
        super().__init__(message)


class TrainingCancelled(Exception):
    """A model owner asked the run to stop."""


class TrainingLeaseLost(Exception):
    """This worker's lease was taken (it stopped heart-beating long enough to be reaped): stop without writing."""


class FineTuneRegressed(Exception):
    """Fine-tuning made the model worse on the evaluation set: the candidate is discarded."""


# --------------------------------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------------------------------


def coin_in_evaluation_set(*, front_sha256: str, back_sha256: str, share: float | None = None) -> bool:
    """Whether a coin belongs to the held-out evaluation set.

    Decided by the coin's own image hashes, not by a random draw over today's coins: a coin never moves between the
    sets as new coins arrive, so candidates and Production are always compared on the same coins.
    """
    share = settings.EVALUATION_SHARE if share is None else share
    digest = hashlib.sha256(f"eval:{front_sha256}:{back_sha256}".encode()).hexdigest()
    return int(digest[:8], 16) / 0x1_0000_0000 < share


def labelled_coins() -> QuerySet[Coin]:
    """Training labels: curator-verified (or imported/demo verified) years only; raw predictions never are."""
    return Coin.objects.filter(verified_year__isnull=False, excluded_from_training=False).order_by("id")


def _sample_weight(coin: Coin) -> float:
    """Hard examples (the model was far off) weigh more in training."""
    prediction = coin.latest_prediction
    if prediction is not None and abs(prediction.year - coin.verified_year) > settings.HARD_EXAMPLE_YEARS:
        return float(settings.HARD_EXAMPLE_WEIGHT)
    return 1.0


def dataset_manifest(*, kind: str = DatasetVersion.Kind.TRAINING) -> list[dict]:
    """The rows a dataset of this kind holds now: coin id, both image hashes, year and training weight."""
    want_eval = kind == DatasetVersion.Kind.EVALUATION
    rows = []
    for coin in labelled_coins().prefetch_related("predictions"):
        if coin_in_evaluation_set(front_sha256=coin.front_sha256, back_sha256=coin.back_sha256) != want_eval:
            continue
        rows.append(
            {
                "coin_id": coin.id,
                "front_sha256": coin.front_sha256,
                "back_sha256": coin.back_sha256,
                "year": coin.verified_year,
                "weight": 1.0 if want_eval else _sample_weight(coin),
            }
        )
    return rows


def dataset_freeze(*, kind: str = DatasetVersion.Kind.TRAINING) -> DatasetVersion:
    """Freeze today's labelled data as a DatasetVersion; the same data gives the same (reused) version."""
    manifest = dataset_manifest(kind=kind)
    content_hash = hashlib.sha256(
        json.dumps({"kind": kind, "rows": manifest}, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    existing = DatasetVersion.objects.filter(content_hash=content_hash).first()
    if existing:
        return existing
    years = [row["year"] for row in manifest]
    try:
        with transaction.atomic():
            return DatasetVersion.objects.create(
                content_hash=content_hash,
                kind=kind,
                manifest=manifest,
                coin_count=len(manifest),
                year_min=min(years, default=None),
                year_max=max(years, default=None),
            )
    except IntegrityError:  # frozen concurrently by another process: same content, same row
        return DatasetVersion.objects.get(content_hash=content_hash)


def _coin_photo(field) -> Path | bytes:
    """A stored photo as the ML engine wants it: a local path when the storage has one (read lazily, epoch after
    epoch, without holding every photo in memory), else the bytes (object stores)."""
    try:
        return Path(field.path)
    except NotImplementedError:
        with field.open("rb") as handle:
            return handle.read()


def dataset_samples(*, dataset: DatasetVersion | None = None, coins: Iterable[Coin] | None = None) -> list[CoinSample]:
    """CoinSamples (photos, year, weight) of a frozen dataset's rows, or of given labelled coins.

    The year and weight come from the frozen manifest, not from today's coin, so a run trains on exactly what it froze.
    A coin deleted since the freeze is skipped (its photos are gone with it).
    """
    from training.ml.data import CoinSample

    if dataset is not None:
        rows = {row["coin_id"]: row for row in dataset.manifest}
        by_id = Coin.objects.in_bulk(list(rows))
        pairs = [(by_id[coin_id], rows[coin_id]) for coin_id in rows if coin_id in by_id]
    else:
        pairs = [(coin, {"year": coin.verified_year, "weight": 1.0}) for coin in coins or ()]
    return [
        CoinSample(
            front=_coin_photo(coin.front_image),
            back=_coin_photo(coin.back_image),
            year=int(row["year"]),
            weight=float(row.get("weight", 1.0)),
            key=str(coin.id),
        )
        for coin, row in pairs
    ]


# --------------------------------------------------------------------------------------------------------------------
# The training lock: at most one RUNNING run (a partial unique constraint), held as a lease with a heartbeat
# --------------------------------------------------------------------------------------------------------------------


def _lease_seconds() -> int:
    return int(getattr(settings, "TRAINING_LEASE_SECONDS", 900))


def training_run_reap_stale(*, now=None) -> list[int]:
    """Mark RUNNING runs whose worker stopped heart-beating for longer than the lease as FAILED ("worker died").

    A worker killed mid-training (OOM, SIGKILL, lost host) cannot clean up after itself; its lease simply expires, and
    whoever comes next (the beat sweeper, the next run, the scheduler) reaps it so the lock is free again. Production
    was never touched by the dead run: promotion only happens after a successful comparison.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=_lease_seconds())
    stale = TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )
    reaped = []
    for run in stale:
        beat = (run.heartbeat_at or run.started_at).isoformat(timespec="seconds")
        updated = TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.RUNNING, heartbeat_at=run.heartbeat_at).update(
            status=TrainingRun.Status.FAILED,
            error=f"worker died: no heartbeat since {beat} (lease {_lease_seconds()} s)",
            finished_at=now,
        )
        if updated:
            reaped.append(run.pk)
            logger.warning("training run %s reaped: worker died (last heartbeat %s)", run.pk, beat)
            _mlflow_end_run_quietly(run.mlflow_run_id, status="FAILED")
    return reaped


def _lease_acquire(run: TrainingRun) -> bool:
    """QUEUED -> RUNNING, which is the lock: the database refuses a second RUNNING row. False when the run is no
    longer queued (another worker took it: acks_late redelivery). Raises TrainingBusy when another run holds it."""
    training_run_reap_stale()
    now = timezone.now()
    try:
        with transaction.atomic():
            updated = TrainingRun.objects.filter(
                pk=run.pk, status=TrainingRun.Status.QUEUED, cancel_requested=False
            ).update(status=TrainingRun.Status.RUNNING, started_at=now, heartbeat_at=now, error="")
    except IntegrityError:
        raise TrainingBusy(TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).first()) from None
    return updated == 1


def _lease_renew(run_id: int, *, progress: dict | None = None) -> bool:
    """Refresh the heartbeat (and progress); returns whether a cancellation was requested.

    Raises TrainingLeaseLost when the run is no longer RUNNING (it was reaped while this worker stalled): the worker
    must stop and write nothing more, another run may already hold the lock.
    """
    fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
    if progress is not None:
        fields["progress"] = progress
    if not TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(**fields):
        raise TrainingLeaseLost(f"training run #{run_id} lost its lease (it was reaped or finished elsewhere)")
    return TrainingRun.objects.filter(pk=run_id, cancel_requested=True).exists()


def _run_finish(run_id: int, *, status: str, **fields) -> TrainingRun:
    """Leave RUNNING (this releases the lock) with the final status; only from RUNNING, so a reaped run stays reaped."""
    TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(
        status=status, finished_at=timezone.now(), **fields
    )
    return TrainingRun.objects.get(pk=run_id)


_SECRET_PATTERNS = [
    (re.compile(r"(\w+://)[^/\s:@]+:[^/\s@]+@"), r"\1***@"),  # credentials in URLs (database, broker, tracking)
    (re.compile(r"(?i)(password|token|secret|api[_-]?key)(\s*[=:]\s*)\S+"), r"\1\2***"),
]


def _error_text(error: BaseException) -> str:
    """A short, secret-free description of a failure for the run's error field (shown to model owners)."""
    text = f"{type(error).__name__}: {error}".strip()
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    if settings.SECRET_KEY:
        text = text.replace(settings.SECRET_KEY, "***")
    return text if len(text) <= ERROR_MAX_CHARS else text[: ERROR_MAX_CHARS - 1] + "…"


def _mlflow_end_run_quietly(run_id: str, *, status: str) -> None:
    """End a dead worker's MLflow run (best effort: the tracking server may be down too)."""
    if not run_id:
        return
    try:
        from training.ml import registry

        from .mlflow_access import mlflow_ready

        mlflow_ready()
        end = getattr(registry, "end_run", None)
        if end is not None:
            end(run_id, status=status, error="worker died (no heartbeat)", model_name=settings.MLFLOW_MODEL_NAME)
    except Exception:  # noqa: BLE001 - reaping must not fail because MLflow is unreachable
        logger.warning("could not mark MLflow run %s as %s", run_id, status, exc_info=True)


# --------------------------------------------------------------------------------------------------------------------
# Training runs
# --------------------------------------------------------------------------------------------------------------------


def training_config_load(*, overrides: Sequence[str] = (), path: str | None = None) -> TrainConfig:
    """Load and validate a training config (YAML + key=value overrides); a bad key or value is a ValidationError
    naming it, so the admin form and the commands can show it before anything is queued."""
    from training.ml.config import load_config

    try:
        return load_config(path or settings.TRAINING_CONFIG_PATH, overrides=list(overrides))
    except (ValueError, TypeError, KeyError) as error:
        raise ValidationError({"config": str(error)}) from error
    except FileNotFoundError as error:
        raise ValidationError({"config": f"config file not found: {error.filename or path}"}) from error


def training_run_start(
    *,
    requested_by=None,
    overrides: Sequence[str] = (),
    fine_tune: bool = False,
    config_path: str | None = None,
    enqueue: bool = True,
) -> TrainingRun:
    """Queue a training run with a validated config; the worker picks it up after commit (queue `training`).

    `requested_by=None` is the system (scheduler, shell commands); a person needs the model-owner permission.
    `enqueue=False` is for the shell commands, which execute the run themselves in-process.
    """
    if requested_by is not None and not can_train(requested_by):
        raise PermissionDenied("Only model owners can start training.")
    config = training_config_load(overrides=overrides, path=config_path)
    if fine_tune and production_version_registered() is None:
        raise ValidationError({"fine_tune": "Fine-tuning starts from Production's weights, and no version is in production yet."})
    with transaction.atomic():
        run = TrainingRun(
            config=config.to_dict(),
            fine_tune=fine_tune,
            requested_by=requested_by if getattr(requested_by, "pk", None) else None,
        )
        run.full_clean()
        run.save()
        if enqueue:
            from .tasks import training_run_execute_task

            run_id = run.id
            transaction.on_commit(lambda: training_run_execute_task.delay(run_id))
    return run


def training_run_cancel(*, run: TrainingRun, actor) -> TrainingRun:
    """Ask a run to stop. A queued run is cancelled at once; a running one stops at its next check (before and
    after every epoch) and ends CANCELLED without registering anything."""
    if not can_train(actor):
        raise PermissionDenied("Only model owners can cancel training.")
    with transaction.atomic():
        TrainingRun.objects.filter(pk=run.pk, status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]).update(
            cancel_requested=True
        )
        TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED).update(
            status=TrainingRun.Status.CANCELLED, error="cancelled before it started", finished_at=timezone.now()
        )
    run.refresh_from_db()
    return run


class _RunHooks:
    """The callbacks fit() calls: progress + heartbeat on the run every epoch, cancellation checks, and (fine-tune,
    when the engine hands over the fold model) the per-epoch check on the evaluation set."""

    def __init__(self, *, run_id: int, folds: int, epochs: int, tracker=None):
        self.run_id = run_id
        self.tracker = tracker
        self.cancelled = False
        self.regressed = ""
        self.model_check: Callable[[int, Any], str] | None = None
        self.progress: dict[str, Any] = {"fold": 0, "folds": folds, "epoch": 0, "epochs": epochs, "stage": "training"}

    def beat(self, **progress) -> None:
        """Save progress and refresh the lease (one UPDATE); notice a cancellation request (one EXISTS)."""
        self.progress.update(progress)
        if _lease_renew(self.run_id, progress=dict(self.progress)):
            self.cancelled = True

    def on_epoch(self, fold: int, epoch: int, metrics: dict) -> None:
        """fit() calls this after every epoch of every fold (1-based): MLflow first, then the run's progress."""
        if self.tracker is not None:
            self.tracker.on_epoch(fold, epoch, metrics)
        progress: dict[str, Any] = {"fold": int(fold), "epoch": int(epoch), "stage": "training"}
        if metrics.get("val_mae") is not None:
            progress["val_mae"] = round(float(metrics["val_mae"]), 3)
        self.beat(**progress)

    def on_model(self, fold: int, epoch: int, model) -> None:
        """Fine-tune: the fold model after an epoch, checked on the evaluation set (engine permitting)."""
        if self.model_check is not None and not self.regressed:
            self.regressed = self.model_check(int(fold), model)

    def should_stop(self) -> bool:
        """Checked by fit() before and after every epoch: a cancellation or a fine-tune regression stops the run."""
        self.beat()
        return self.cancelled or bool(self.regressed)


def production_version_registered() -> int | None:
    """The version MLflow alias `production` points to now (the registry is the truth; the mirror follows it)."""
    from training.ml import registry

    from .mlflow_access import mlflow_ready

    mlflow_ready()
    return registry.get_alias_version(settings.MLFLOW_MODEL_NAME, PRODUCTION_ALIAS)


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON (PostgreSQL's jsonb refuses them): None instead; numpy numbers to floats."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return value


def _run_metrics(summary: dict, result) -> dict:
    """TrainingRun.metrics: the tracker's summary (folds, baseline, interval, mae_by_decade ...), the flat keys of
    the MLflow parent run at top level (mae, mae_std, baseline_mae, fold_1_mae ...) and the printable report."""
    flat = dict(summary.get("summary") or {})
    return _json_safe({**flat, **summary, "beats_baseline": bool(result.beats_baseline), "report": result.summary()})


def _fine_tune_setup(*, run_config, production: int) -> tuple[Any, list]:
    """Fine-tuning continues Production's fold models: their architecture (from the version's config), their
    weights, fine_tune_epochs epochs at a tenth of the configured peak learning rate, no early stopping."""
    import dataclasses

    import torch

    from training.ml import registry

    loaded = registry.load_predictor(settings.MLFLOW_MODEL_NAME, production, cache_dir=_model_cache_dir())
    files = registry.model_files(loaded.path)
    states = torch.load(files["fold_states"], map_location="cpu", weights_only=True)
    config = dataclasses.replace(
        loaded.config,
        epochs=run_config.fine_tune_epochs,
        fine_tune_epochs=run_config.fine_tune_epochs,
        lr=run_config.lr / 10,
        patience=0,
        seed=run_config.seed,
        batch_size=run_config.batch_size,
    )
    if len(states) != config.folds:
        config = dataclasses.replace(config, folds=len(states))
    return config, list(states)


def _eval_tensors(samples: Sequence[CoinSample], config) -> tuple[Any, Any, np.ndarray]:
    """The evaluation set through the serving preprocessing, once (reused every epoch of fine-tuning)."""
    from training.ml import images

    front, back = images.preprocess_batch([(_read(s.front), _read(s.back)) for s in samples], config)
    return front, back, np.array([s.year for s in samples], dtype=float)


def _model_years(model, front, back) -> np.ndarray:
    """Years predicted by a torch model (a fold model or an ensemble's first column), eval mode, no autograd."""
    import torch

    was_training = getattr(model, "training", False)
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, front.shape[0], EVAL_BATCH_SIZE):
            y = model(front[start : start + EVAL_BATCH_SIZE].to(device), back[start : start + EVAL_BATCH_SIZE].to(device))
            out.append(y.float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def _fine_tune_checks(*, config, states: list, eval_samples: Sequence[CoinSample], production: int):
    """Per-epoch check (fold model vs the same Production fold model on the evaluation set) and the final check
    (fine-tuned ensemble vs Production's ensemble on the evaluation set). A regression discards the candidate."""
    from training.ml.model import build_model, denormalise_year

    front, back, years = _eval_tensors(eval_samples, config)
    margin = float(settings.PROMOTION_MARGIN_YEARS)
    before: dict[int, float] = {}
    for fold, state in enumerate(states, start=1):
        model = build_model(config)
        model.load_state_dict(state)
        before[fold] = float(np.mean(np.abs(denormalise_year(_model_years(model, front, back), config) - years)))

    def per_epoch(fold: int, model) -> str:
        mae = float(np.mean(np.abs(denormalise_year(_model_years(model, front, back), config) - years)))
        if mae > before[fold] + margin:
            return (
                f"fine-tuning regressed on the evaluation set: fold {fold} MAE {mae:.2f} > {before[fold]:.2f} before "
                f"fine-tuning (+{margin:g} slack)"
            )
        return ""

    production_mae = model_version_evaluate(version=production, samples=eval_samples)["metrics"]["mae"]

    def final(result) -> str:
        ensemble = result.ensemble()
        mae = float(np.mean(np.abs(_ensemble_years(ensemble, front, back) - years)))
        if mae > production_mae:
            return (
                f"fine-tuning regressed on the evaluation set: ensemble MAE {mae:.2f} > Production's "
                f"{production_mae:.2f}"
            )
        return ""

    return per_epoch, final


def _ensemble_years(ensemble, front, back) -> np.ndarray:
    import torch

    ensemble.eval()
    with torch.inference_mode():
        return np.concatenate(
            [
                ensemble(front[i : i + EVAL_BATCH_SIZE], back[i : i + EVAL_BATCH_SIZE])[:, 0].float().numpy()
                for i in range(0, front.shape[0], EVAL_BATCH_SIZE)
            ]
        )


def _model_cache_dir() -> str:
    return str(Path(settings.VAR_DIR) / "model-cache")


def training_run_execute(
    *,
    run_id: int,
    progress: bool = False,
    on_epoch: Callable[[int, int, dict], None] | None = None,
    auto_promote: bool | None = None,
) -> TrainingRun:
    """Run a queued training: lock, freeze, K-fold train, register, compare with Production, decide.

    Task-safe: a run that is not QUEUED any more is returned untouched (acks_late redelivery, a second worker).
    Raises TrainingBusy (the run stays queued) while another run holds the lock. Any other failure ends the run FAILED
    with a short reason, leaves Production as it was and releases the lock; the MLflow run ends FAILED and a version
    it registered is deleted again (registry.TrainingTracker). A cancelled run ends CANCELLED the same way.
    `on_epoch(fold, epoch, metrics)` observes every epoch (tests, progress displays);
    `auto_promote` overrides settings.AUTO_PROMOTE for this run (`manage.py retrain --auto-promote`).
    """
    run = TrainingRun.objects.get(pk=run_id)
    if run.status != TrainingRun.Status.QUEUED:
        return run
    if run.cancel_requested:
        TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED).update(
            status=TrainingRun.Status.CANCELLED, finished_at=timezone.now(), error="cancelled before it started"
        )
        return TrainingRun.objects.get(pk=run.pk)
    if not _lease_acquire(run):
        return TrainingRun.objects.get(pk=run.pk)
    started = time.monotonic()
    try:
        finished = _training_run_work(
            run_id=run.pk, progress=progress, on_epoch=on_epoch,
            auto_promote=settings.AUTO_PROMOTE if auto_promote is None else auto_promote,
        )
    except TrainingLeaseLost as error:
        logger.warning("%s", error)
        return TrainingRun.objects.get(pk=run.pk)
    except TrainingCancelled:
        finished = _run_finish(run.pk, status=TrainingRun.Status.CANCELLED, error="cancelled by a model owner")
    except FineTuneRegressed as error:
        finished = _run_finish(
            run.pk, status=TrainingRun.Status.SUCCEEDED, verdict=TrainingRun.Verdict.REJECTED,
            error=str(error)[:ERROR_MAX_CHARS],
        )
    except Exception as error:  # noqa: BLE001 - any failure: FAILED with the reason, Production untouched
        logger.exception("training run %s failed", run.pk)
        finished = _run_finish(run.pk, status=TrainingRun.Status.FAILED, error=_error_text(error))
    finally:
        # Whatever happened (even KeyboardInterrupt), this worker's run is not left RUNNING: the lock is released.
        TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.RUNNING).update(
            status=TrainingRun.Status.FAILED, finished_at=timezone.now(), error="stopped unexpectedly"
        )
    logger.info("training run %s: %s %s in %.0f s", run.pk, finished.status, finished.verdict, time.monotonic() - started)
    _next_queued_run_kick()
    return finished


def _next_queued_run_kick() -> None:
    """The lock is free again: hand the oldest queued run (one that found the lock taken) to a worker. With a broker
    its own retry would get there too; in-process (eager) nothing else would ever start it."""
    waiting = (
        TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED, cancel_requested=False)
        .order_by("created_at", "id")
        .values_list("id", flat=True)
        .first()
    )
    if waiting is not None:
        from .tasks import training_run_execute_task

        transaction.on_commit(lambda: training_run_execute_task.delay(waiting))


def _training_run_work(
    *, run_id: int, progress: bool, on_epoch: Callable | None, auto_promote: bool
) -> TrainingRun:
    import inspect

    from training.ml import registry
    from training.ml import train as ml_train
    from training.ml.config import TrainConfig

    from .mlflow_access import mlflow_ready

    mlflow_ready()
    run = TrainingRun.objects.get(pk=run_id)
    config = TrainConfig.from_dict(run.config)
    name = settings.MLFLOW_MODEL_NAME

    _lease_renew(run_id, progress={"stage": "freezing data"})
    training_set = dataset_freeze(kind=DatasetVersion.Kind.TRAINING)
    evaluation_set = dataset_freeze(kind=DatasetVersion.Kind.EVALUATION)
    TrainingRun.objects.filter(pk=run_id).update(dataset_version=training_set, evaluation_dataset=evaluation_set)
    train_samples = dataset_samples(dataset=training_set)

    production = registry.get_alias_version(name, PRODUCTION_ALIAS)
    init_states = None
    final_check = None
    hooks = _RunHooks(run_id=run_id, folds=config.folds, epochs=config.epochs)
    if run.fine_tune:
        if production is None:
            raise ValueError("fine-tuning needs a Production version to start from, and there is none")
        _lease_renew(run_id, progress={"stage": "loading Production for fine-tuning"})
        config, init_states = _fine_tune_setup(run_config=config, production=production)
        eval_samples = dataset_samples(dataset=evaluation_set)
        if not eval_samples:
            raise ValueError("fine-tuning checks every epoch on the evaluation set, and it is empty")
        per_epoch, final_check = _fine_tune_checks(
            config=config, states=init_states, eval_samples=eval_samples, production=production
        )
        hooks.model_check = per_epoch
        hooks.progress.update(folds=config.folds, epochs=config.epochs)
    minimum = 2 * config.folds
    if len(train_samples) < minimum:
        raise ValueError(
            f"not enough labelled coins to train: {len(train_samples)} in the training set, at least {minimum} "
            f"needed for {config.folds} folds"
        )
    hooks.beat(stage="training")

    def epoch_hook(fold: int, epoch: int, metrics: dict) -> None:
        hooks.on_epoch(fold, epoch, metrics)
        if on_epoch is not None:
            on_epoch(fold, epoch, metrics)

    fit_kwargs: dict[str, Any] = {}
    if "on_model" in inspect.signature(ml_train.fit).parameters:
        fit_kwargs["on_model"] = hooks.on_model
    tags = {
        "coinsite.training_run": str(run_id),
        "coinsite.dataset": training_set.content_hash,
        "coinsite.evaluation_dataset": evaluation_set.content_hash,
        "coinsite.fine_tune": str(run.fine_tune).lower(),
        "coinsite.requested_by": getattr(run.requested_by, "username", "system"),
    }
    with registry.TrainingTracker(config, run_name=f"training-run-{run_id}", tags=tags) as tracker:
        hooks.tracker = tracker
        TrainingRun.objects.filter(pk=run_id).update(mlflow_run_id=tracker.run_id)
        try:
            result = ml_train.fit(
                config,
                train_samples,
                progress=progress,
                on_epoch=epoch_hook,
                should_stop=hooks.should_stop,
                init_state_dict=init_states,
                **fit_kwargs,
            )
        except ml_train.TrainingCancelled:
            if hooks.regressed:
                raise FineTuneRegressed(hooks.regressed + "; the candidate was discarded (nothing registered)") from None
            raise TrainingCancelled() from None
        if hooks.cancelled:
            raise TrainingCancelled()
        if final_check is not None:
            hooks.beat(stage="checking fine-tuned model")
            regressed = final_check(result)
            if regressed:
                raise FineTuneRegressed(regressed + "; the candidate was discarded (nothing registered)")
        hooks.beat(stage="logging to MLflow")
        summary = tracker.log_result(result, training_set.manifest)
        metrics = _run_metrics(summary, result)
        tracker.log_model(result)
        hooks.beat(stage="registering")
        version = tracker.register(name, serve_if_first=result.beats_baseline)
        hooks.beat(stage="comparing with Production")
        if production is None:
            comparison = model_version_compare(candidate=version, production=None, evaluation=evaluation_set)
        else:
            comparison = model_version_compare(
                candidate=version,
                production=production,
                evaluation=evaluation_set,
                corrected_coin_ids=coins_corrected_since(version=production),
            )
        comparison = _json_safe(comparison)
        registry.log_evaluation(
            tracker.run_id,
            {"eval": {k: comparison.get(k) for k in ("candidate", "production")}, "corrected": comparison["corrected"]},
            {"comparison.json": comparison},
        )
        if not result.beats_baseline:  # the gate: never served automatically, not even as the first version
            comparison.update(
                better=False,
                verdict="rejected",
                reason=f"does not beat the constant baseline on its own cross-validation (MAE "
                f"{result.metrics['mae']:.2f} vs {result.baseline_metrics['mae']:.2f}): not put in Production",
            )
        verdict = TrainingRun.Verdict.RECOMMENDED if comparison["better"] else TrainingRun.Verdict.REJECTED
        if production is None and comparison["better"]:
            verdict = TrainingRun.Verdict.PROMOTED
        elif verdict == TrainingRun.Verdict.RECOMMENDED:
            registry.set_alias(name, STAGING_ALIAS, version)
    # The tracker ended FINISHED: only now may a first version serve (the registry gave it alias `production` at the
    # end of the block; a failure inside the block deleted the version instead). Then the mirror and the audit row.
    first_serves = production is None and verdict == TrainingRun.Verdict.PROMOTED
    if first_serves and registry.get_alias_version(name, PRODUCTION_ALIAS) != version:
        registry.set_alias(name, PRODUCTION_ALIAS, version)  # no Production although versions exist (alias removed)
    with transaction.atomic():
        mirror = model_version_mirror(version=version)
        flat_metrics = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        mirror.training_run_id = run_id
        mirror.metrics = {**flat_metrics, "folds": metrics.get("folds", [])}
        mirror.save(update_fields=["training_run", "metrics"])
        if first_serves:
            _initial_production(mirror=mirror, actor=run.requested_by)
        elif verdict == TrainingRun.Verdict.RECOMMENDED:
            _alias_mirror(name=name, version=version, alias=STAGING_ALIAS)
    finished = _run_finish(
        run_id, status=TrainingRun.Status.SUCCEEDED, metrics=metrics, comparison=comparison, verdict=verdict,
        progress={**hooks.progress, "stage": "done"},
    )
    if verdict == TrainingRun.Verdict.RECOMMENDED and auto_promote:
        try:
            model_version_promote(version=version, actor=None, action=Promotion.Action.AUTO)
        except Exception as error:  # noqa: BLE001 - the run succeeded; the promotion can be done by hand
            logger.exception("auto-promotion of v%s failed", version)
            TrainingRun.objects.filter(pk=run_id).update(error=_error_text(error))
        finished.refresh_from_db()
    return finished


def _read(photo: Path | bytes) -> bytes:
    return photo if isinstance(photo, bytes | bytearray) else Path(photo).read_bytes()


# --------------------------------------------------------------------------------------------------------------------
# Evaluation and comparison
# --------------------------------------------------------------------------------------------------------------------


def mae_by_decade(years_true: Sequence[float], years_pred: Sequence[float]) -> dict[str, dict]:
    """{"1870": {"mae": .., "count": ..}, ...}: where in time a model errs (decades of the true year)."""
    table: dict[int, list[float]] = {}
    for truth, pred in zip(years_true, years_pred, strict=True):
        table.setdefault(int(truth) // 10 * 10, []).append(abs(float(pred) - float(truth)))
    return {str(decade): {"mae": float(np.mean(errs)), "count": len(errs)} for decade, errs in sorted(table.items())}


def model_version_evaluate(*, version: int, samples: Sequence[CoinSample], progress: bool = False) -> dict:
    """Score a registered version on labelled samples the way serving does (registry.load_predictor + the single
    preprocessing path of training.ml.images): regression metrics, MAE by decade, interval coverage and the
    per-sample predictions (keyed by sample key)."""
    from training.ml import images, registry
    from training.ml.train import regression_metrics

    from .mlflow_access import mlflow_ready

    mlflow_ready()
    predictor = registry.load_predictor(settings.MLFLOW_MODEL_NAME, version, cache_dir=_model_cache_dir())
    rows = []
    starts = range(0, len(samples), EVAL_BATCH_SIZE)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"evaluating v{version}", unit="batch")
    for start in starts:
        chunk = samples[start : start + EVAL_BATCH_SIZE]
        front, back = images.preprocess_batch([(_read(s.front), _read(s.back)) for s in chunk], predictor.config)
        rows.append(np.asarray(predictor.predict_pairs(front, back), dtype=float).reshape(len(chunk), -1))
    output = np.concatenate(rows) if rows else np.zeros((0, 3))
    years = np.array([s.year for s in samples], dtype=float)
    predicted = output[:, 0] if len(output) else np.zeros(0)
    result: dict[str, Any] = {"version": int(version), "count": len(samples)}
    if len(samples):
        result["metrics"] = {k: float(v) for k, v in regression_metrics(years, predicted).items()}
        if output.shape[1] >= 3:
            result["metrics"]["interval_coverage"] = float(np.mean((output[:, 1] <= years) & (years <= output[:, 2])))
        result["mae_by_decade"] = mae_by_decade(years, predicted)
    else:
        result["metrics"] = {}
        result["mae_by_decade"] = {}
    result["predictions"] = {s.key or str(i): float(p) for i, (s, p) in enumerate(zip(samples, predicted, strict=True))}
    return result


def coins_corrected_since(*, version: int) -> list[int]:
    """Labelled coins a curator corrected after `version` was registered: what Production got wrong (or was not sure
    of) since, the coins a candidate should do better on."""
    mirror = ModelVersion.objects.filter(name=settings.MLFLOW_MODEL_NAME, version=version).first()
    since = mirror.created_at if mirror else None
    if mirror and mirror.training_run and mirror.training_run.started_at:
        since = mirror.training_run.started_at
    corrections = Correction.objects.filter(new_year__isnull=False, excluded=False)
    if since is not None:
        corrections = corrections.filter(created_at__gt=since)
    coin_ids = set(corrections.values_list("coin_id", flat=True))
    return list(labelled_coins().filter(id__in=coin_ids).values_list("id", flat=True))


def _compare_side(evaluation: dict) -> dict:
    """One column of the comparison table: flat metrics + MAE by decade (values in years, counts beside)."""
    return {
        "version": evaluation["version"],
        "count": evaluation["count"],
        **evaluation["metrics"],
        "mae_by_decade": {decade: row["mae"] for decade, row in evaluation["mae_by_decade"].items()},
        "decade_counts": {decade: row["count"] for decade, row in evaluation["mae_by_decade"].items()},
    }


def model_version_compare(
    *,
    candidate: int,
    production: int | None,
    evaluation: DatasetVersion,
    corrected_coin_ids: Sequence[int] = (),
) -> dict:
    """Candidate vs Production on the SAME held-out evaluation coins (and on the coins corrected since Production was
    trained), scored through the serving path. `better` says whether the candidate beats Production's MAE by
    PROMOTION_MARGIN_YEARS; the verdict is made from it, never from cross-validation numbers of different data.

    Shape: {candidate: {version, count, mae, mse, r2, within_5, within_10, ..., mae_by_decade: {"1870": mae}},
    production: {...} | None, corrected: {count, candidate_mae, production_mae}, better, delta_mae, margin, verdict,
    reason, evaluation_dataset, evaluation_count}.
    """
    eval_samples = dataset_samples(dataset=evaluation)
    corrected_coins = list(labelled_coins().filter(id__in=list(corrected_coin_ids)))
    corrected_samples = dataset_samples(coins=corrected_coins)
    margin = float(settings.PROMOTION_MARGIN_YEARS)
    comparison: dict[str, Any] = {
        "evaluation_dataset": evaluation.pk,
        "evaluation_hash": evaluation.content_hash,
        "evaluation_count": len(eval_samples),
        "margin": margin,
        "corrected": {"count": len(corrected_samples), "candidate_mae": None, "production_mae": None},
    }
    for role, version in (("candidate", candidate), ("production", production)):
        if version is None:
            comparison[role] = None
            continue
        comparison[role] = _compare_side(model_version_evaluate(version=version, samples=eval_samples))
        if corrected_samples:
            on_corrected = model_version_evaluate(version=version, samples=corrected_samples)
            comparison["corrected"][f"{role}_mae"] = on_corrected["metrics"].get("mae")
    cand_mae = (comparison["candidate"] or {}).get("mae")
    prod_mae = (comparison["production"] or {}).get("mae")
    if production is None:
        comparison.update(better=True, delta_mae=None, reason="first version: nothing to compare with")
    elif cand_mae is None or prod_mae is None:
        comparison.update(better=False, delta_mae=None, reason="the evaluation set is empty: no evidence, not promoted")
    else:
        delta = cand_mae - prod_mae
        better = delta <= -margin
        comparison.update(
            better=better,
            delta_mae=delta,
            reason=(
                f"candidate MAE {cand_mae:.2f} vs Production {prod_mae:.2f} on {len(eval_samples)} held-out coins: "
                + ("better" if better else "not better")
                + f" by the margin of {margin:g} years"
            ),
        )
    comparison["verdict"] = "recommended" if comparison["better"] else "rejected"
    return comparison


# --------------------------------------------------------------------------------------------------------------------
# Registry mirror, promotion and rollback
# --------------------------------------------------------------------------------------------------------------------


def model_version_mirror(*, version: int, name: str | None = None) -> ModelVersion:
    """The mirror row of a registered MLflow version, created from the registry when first seen in this database
    (a version may be registered by another host, e.g. a training worker or `manage.py train` elsewhere)."""
    name = name or settings.MLFLOW_MODEL_NAME
    existing = ModelVersion.objects.filter(name=name, version=version).first()
    if existing:
        return existing
    from training.ml import registry

    from .mlflow_access import mlflow_ready

    mlflow_ready()
    info = registry.version_info(name, version)
    aliases = list(info.get("aliases", []))
    is_production = PRODUCTION_ALIAS in aliases
    try:
        with transaction.atomic():
            if is_production:  # the registry is the truth about the alias; the mirror follows it
                ModelVersion.objects.filter(name=name, is_production=True).update(is_production=False)
            return ModelVersion.objects.create(
                name=name,
                version=version,
                run_id=info.get("run_id", ""),
                metrics=_json_safe(info.get("metrics", {})),
                aliases=aliases,
                is_production=is_production,
            )
    except IntegrityError:
        return ModelVersion.objects.get(name=name, version=version)


def _alias_mirror(*, name: str, version: int, alias: str) -> None:
    """Reflect an alias move (done in MLflow by the caller) in the mirror rows' alias lists."""
    for row in ModelVersion.objects.select_for_update().filter(name=name):
        aliases = [a for a in row.aliases if a != alias]
        if row.version == version:
            aliases.append(alias)
        if aliases != row.aliases:
            row.aliases = aliases
            row.save(update_fields=["aliases"])


def _initial_production(*, mirror: ModelVersion, actor) -> Promotion:
    """The very first version became Production at registration (the registry gave it the alias): mirror it and
    write the audit row (action=initial)."""
    with transaction.atomic():
        ModelVersion.objects.filter(name=mirror.name, is_production=True).exclude(pk=mirror.pk).update(is_production=False)
        mirror.is_production = True
        mirror.promoted_at = timezone.now()
        mirror.promoted_by = actor
        if PRODUCTION_ALIAS not in mirror.aliases:
            mirror.aliases = [*mirror.aliases, PRODUCTION_ALIAS]
        mirror.save(update_fields=["is_production", "promoted_at", "promoted_by", "aliases"])
        promotion = Promotion.objects.create(
            name=mirror.name, from_version=None, to_version=mirror, action=Promotion.Action.INITIAL, actor=actor
        )
        transaction.on_commit(_predict_coins_waiting_for_a_model, robust=True)
        return promotion


def _check_promoter(actor, action: str) -> None:
    if actor is None:
        if action not in (Promotion.Action.AUTO, Promotion.Action.INITIAL):
            raise PermissionDenied("Only model owners can promote or roll back model versions.")
        return
    if not can_promote(actor):
        raise PermissionDenied("Only model owners can promote or roll back model versions.")


def model_version_promote(*, version: int, actor, action: str = Promotion.Action.PROMOTE) -> Promotion:
    """Make `version` Production: ONE place moves the MLflow alias `production` and the mirror (is_production,
    promoted_at/by, aliases) together and writes the audit row (who, when, from, to).

    The database writes and the alias move happen in one transaction, the alias last: if MLflow refuses, nothing in
    the database changed; if the commit fails after the alias moved, the alias is put back. `actor=None` is only the
    system's auto-promotion.
    """
    _check_promoter(actor, action)
    from training.ml import registry

    from .mlflow_access import mlflow_ready

    mlflow_ready()
    name = settings.MLFLOW_MODEL_NAME
    if version not in registry.list_versions(name):
        raise ValidationError(f"{name} has no registered version {version}.")
    target = model_version_mirror(version=version)
    previous = registry.get_alias_version(name, PRODUCTION_ALIAS)
    if previous is not None and previous != version:
        model_version_mirror(version=previous)  # so the audit row can name what it replaced
    if previous == version and target.is_production:
        raise ValidationError(f"{name} v{version} is already in production.")
    try:
        with transaction.atomic():
            rows = {row.version: row for row in ModelVersion.objects.select_for_update().filter(name=name)}
            target = rows[version]
            from_row = rows.get(previous) if previous is not None else None
            if from_row is None:
                from_row = next((row for row in rows.values() if row.is_production), None)
            now = timezone.now()
            for row in rows.values():
                if row.version == version:
                    continue
                aliases = [a for a in row.aliases if a != PRODUCTION_ALIAS]
                if row.is_production or aliases != row.aliases:
                    row.is_production = False
                    row.aliases = aliases
                    row.save(update_fields=["is_production", "aliases"])
            target.is_production = True
            target.promoted_at = now
            target.promoted_by = actor
            target.aliases = [a for a in target.aliases if a != STAGING_ALIAS] + (
                [] if PRODUCTION_ALIAS in target.aliases else [PRODUCTION_ALIAS]
            )
            target.save(update_fields=["is_production", "promoted_at", "promoted_by", "aliases"])
            promotion = Promotion.objects.create(
                name=name, from_version=from_row, to_version=target, action=action, actor=actor
            )
            if target.training_run_id and action in (Promotion.Action.PROMOTE, Promotion.Action.AUTO):
                TrainingRun.objects.filter(pk=target.training_run_id).update(verdict=TrainingRun.Verdict.PROMOTED)
            registry.set_alias(name, PRODUCTION_ALIAS, version)  # last: a refusal rolls the database back
    except Exception:
        current = _safe_alias(name)
        if current == version and previous is not None and previous != version:
            registry.set_alias(name, PRODUCTION_ALIAS, previous)  # the commit failed after the alias moved
        raise
    _staging_clear(name=name, version=version)
    transaction.on_commit(_refresh_local_inference)
    if previous is None:  # the first model: coins uploaded while there was none get their prediction now
        transaction.on_commit(_predict_coins_waiting_for_a_model, robust=True)
    logger.info("%s: %s v%s -> v%s by %s", action, name, previous, version, actor or "system")
    return promotion


def _safe_alias(name: str) -> int | None:
    from training.ml import registry

    try:
        return registry.get_alias_version(name, PRODUCTION_ALIAS)
    except Exception:  # noqa: BLE001
        return None


def _staging_clear(*, name: str, version: int) -> None:
    """A promoted version leaves Staging (stage semantics: Staging -> Production)."""
    from training.ml import registry

    try:
        if registry.get_alias_version(name, STAGING_ALIAS) == version:
            registry.delete_alias(name, STAGING_ALIAS)
    except Exception:  # noqa: BLE001 - cosmetic
        logger.warning("could not clear alias staging of v%s", version, exc_info=True)


def _refresh_local_inference() -> None:
    """This process serves predictions too (embedded default): swap to the new Production now instead of waiting for
    the alias poll. Other processes pick it up within INFERENCE_ALIAS_POLL_SECONDS."""
    try:
        from predictions import inference

        if inference.production_version_loaded() is not None:
            inference.get_batcher().holder.refresh()
    except Exception:  # noqa: BLE001 - the poller will catch up
        logger.warning("could not refresh this process's inference model", exc_info=True)


def _predict_coins_waiting_for_a_model() -> None:
    """Enqueue every pending coin (the pending sweeper would, but only minutes later)."""
    from predictions.services import coins_requeue_pending

    count = coins_requeue_pending(older_than_seconds=0)
    logger.info("first model in production: %s waiting coins queued for prediction", count)


def production_history(*, name: str | None = None) -> list[int]:
    """Which versions served, oldest first, as a stack: promotions push, rollbacks pop."""
    stack: list[int] = []
    for promotion in Promotion.objects.filter(name=name or settings.MLFLOW_MODEL_NAME).select_related(
        "to_version"
    ).order_by("created_at", "id"):
        if promotion.action == Promotion.Action.ROLLBACK:
            if stack:
                stack.pop()
            if not stack or stack[-1] != promotion.to_version.version:
                stack.append(promotion.to_version.version)
        else:
            stack.append(promotion.to_version.version)
    return stack


def model_version_rollback(*, actor) -> Promotion:
    """Put back the version that was Production before the current one (per the Promotion history; repeated
    rollbacks walk further back)."""
    _check_promoter(actor, Promotion.Action.ROLLBACK)
    stack = production_history()
    if len(stack) < 2:
        raise ValidationError("There is no earlier Production version to roll back to.")
    return model_version_promote(version=stack[-2], actor=actor, action=Promotion.Action.ROLLBACK)


# --------------------------------------------------------------------------------------------------------------------
# Re-scoring after a promotion
# --------------------------------------------------------------------------------------------------------------------


def coins_rescore(*, coin_ids: Sequence[int]) -> int:
    """Re-predict chosen coins with the current Production (after commit, on the `training` queue). Coins keep their
    old predictions; the new one is added, so movers can be listed."""
    from .tasks import coins_rescore_task

    ids = [int(i) for i in coin_ids]
    if ids:
        transaction.on_commit(lambda: coins_rescore_task.delay(ids))
    return len(ids)


def coins_rescore_now(*, coin_ids: Sequence[int]) -> int:
    """The work of coins_rescore, in this process: refresh the Production model first (it may just have moved), then
    force a new prediction per coin. Returns how many got one."""
    from predictions import inference

    try:
        inference.get_batcher().holder.refresh()
    except inference.NoProductionModel:
        return 0
    done = 0
    for coin_id in coin_ids:
        if inference.coin_predict(coin_id=coin_id, force=True) is not None:
            done += 1
    return done


def rescore_movers(*, since_version: int, limit: int = 50) -> list[dict]:
    """Coins whose predicted year moved most between their prediction by `since_version` and their newest
    prediction by a later version: where curators should look first after a promotion."""
    name = settings.MLFLOW_MODEL_NAME
    old = {
        p.coin_id: p
        for p in Prediction.objects.filter(model_version__name=name, model_version__version=since_version).order_by(
            "created_at", "id"
        )
    }
    newer = (
        Prediction.objects.filter(coin_id__in=list(old), model_version__name=name, model_version__version__gt=since_version)
        .select_related("model_version")
        .order_by("created_at", "id")
    )
    latest = {p.coin_id: p for p in newer}  # the last one per coin wins
    movers = [
        {
            "coin_id": coin_id,
            "old_year": old[coin_id].year,
            "new_year": p.year,
            "moved": abs(p.year - old[coin_id].year),
            "old_version": since_version,
            "new_version": p.model_version.version,
            "interval": [p.interval_low, p.interval_high],
        }
        for coin_id, p in latest.items()
    ]
    movers.sort(key=lambda m: (-m["moved"], m["coin_id"]))
    return movers[:limit]


# --------------------------------------------------------------------------------------------------------------------
# The schedule
# --------------------------------------------------------------------------------------------------------------------


def new_labels_count() -> int:
    """Labels (coin, year) that the last successful run did not train or evaluate on: new coins and changed years."""
    last = (
        TrainingRun.objects.filter(status=TrainingRun.Status.SUCCEEDED, dataset_version__isnull=False)
        .select_related("dataset_version", "evaluation_dataset")
        .order_by("-created_at", "-id")
        .first()
    )
    seen: set[tuple[int, int]] = set()
    if last is not None:
        for dataset in (last.dataset_version, last.evaluation_dataset):
            if dataset is not None:
                seen.update((row["coin_id"], row["year"]) for row in dataset.manifest)
    return sum(1 for pair in labelled_coins().values_list("id", "verified_year") if tuple(pair) not in seen)


def retrain_if_enough_labels() -> TrainingRun | None:
    """The scheduler's decision: start a run when at least RETRAIN_MIN_NEW_LABELS new verified labels exist since
    the last run's data, and nothing while a run is queued or running."""
    training_run_reap_stale()
    if TrainingRun.objects.filter(status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]).exists():
        logger.info("retrain: a run is already queued or running")
        return None
    count = new_labels_count()
    if count < settings.RETRAIN_MIN_NEW_LABELS:
        logger.info("retrain: %s new labels, %s needed", count, settings.RETRAIN_MIN_NEW_LABELS)
        return None
    logger.info("retrain: %s new labels, starting a run", count)
    return training_run_start(requested_by=None)
