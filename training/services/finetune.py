"""Fine-tuning: continue Production's fold models, checked on the evaluation set every epoch and at the end."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from django.conf import settings

from registry import gateway
from training.ml import images
from training.ml.labels import CoinSample
from training.ml.model import build_model, denormalise_year

from .comparison import EVAL_BATCH_SIZE, model_version_evaluate, photo_bytes


def fine_tune_setup(*, run_config, production: int) -> tuple[Any, list]:
    """Fine-tuning continues Production's fold models: their architecture (from the version's config), their
    weights, fine_tune_epochs epochs at a tenth of the configured peak learning rate, no early stopping."""
    loaded = gateway.predictor_load(production, name=settings.MLFLOW_MODEL_NAME)
    files = gateway.tracking().model_files(loaded.path)
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
    pairs = [(photo_bytes(s.front), photo_bytes(s.back)) for s in samples]
    front, back = images.preprocess_batch(pairs, config, limits=settings.COINSITE_PHOTO_LIMITS)
    return front, back, np.array([s.year for s in samples], dtype=float)


def _model_years(model, front, back) -> np.ndarray:
    """Years predicted by a torch model (a fold model or an ensemble's first column), eval mode, no autograd."""
    was_training = getattr(model, "training", False)
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, front.shape[0], EVAL_BATCH_SIZE):
            y = model(
                front[start : start + EVAL_BATCH_SIZE].to(device), back[start : start + EVAL_BATCH_SIZE].to(device)
            )
            out.append(y.float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def fine_tune_checks(*, config, states: list, eval_samples: Sequence[CoinSample], production: int):
    """Per-epoch check (fold model vs the same Production fold model on the evaluation set) and the final check
    (fine-tuned ensemble vs Production's ensemble on the evaluation set). A regression discards the candidate."""
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
    ensemble.eval()
    with torch.inference_mode():
        return np.concatenate(
            [
                ensemble(front[i : i + EVAL_BATCH_SIZE], back[i : i + EVAL_BATCH_SIZE])[:, 0].float().numpy()
                for i in range(0, front.shape[0], EVAL_BATCH_SIZE)
            ]
        )
