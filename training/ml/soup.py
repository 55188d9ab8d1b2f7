"""One served date reader instead of K: the fold models averaged weight by weight (a uniform "model soup").

Why: serving K fold readers costs K forward passes. At 600 px the 3-fold reader took 19.0 ms per pair in process
(int8), 2.3 x the seed's 8.4 ms, and its forward passes were 11.4 ms of that. The fold models all start from the
same pretrained base reader and are fine-tuned briefly at a low learning rate, so they stay in one basin of the loss,
where the average of their weights is itself a good model (Wortsman et al. 2022, "Model soups"). Measured on the
quick run (600 coins, 10 epochs, 3 folds) and 1,000 fresh coins: the folds alone 94.4-96.3 % exact (MAE 0.41-0.87 y),
their ensemble 96.7 % (MAE 0.42), the soup 97.4 % (MAE 0.28), at a third of the ensemble's cost.

The soup's batch-norm statistics are recomputed on the run's un-augmented coins (averaged statistics belong to none
of the averaged weights; the same 97.3-97.4 % here, but nothing guarantees it elsewhere). It is calibrated
(temperature, coin threshold) on the holdout that no fold model saw, like the ensemble, and served only when it
reads that holdout at least about as well as the ensemble (SOUP_EXACT_TOLERANCE, SOUP_MAE_TOLERANCE); otherwise
the run registers the ensemble as before. The fold models stay in the version for fine-tuning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Subset

from training.ml.config import TrainConfig
from training.ml.data import make_loader
from training.ml.folds import FoldContext, FoldOutput, FoldPlan
from training.ml.model import CoinDateModel, build_model
from training.ml.reader_calibration import reader_outputs
from training.ml.train import StateDict, recalibrate_batchnorm

SOUP_BATCHNORM_COINS = 512  # un-augmented coins for the soup's batch-norm statistics (about 8 s at 192 px, 2 cores)
SOUP_EXACT_TOLERANCE = 0.02  # the soup is served when its holdout exact share is at most this far below the ensemble
SOUP_MAE_TOLERANCE = 0.5  # ... and its holdout MAE at most this many years above the ensemble's


def uniform_soup(states: Sequence[Mapping[str, torch.Tensor]]) -> StateDict:
    """The element-wise mean of floating-point tensors; other tensors (batch counters) are taken from the first."""
    if not states:
        raise ValueError("a soup needs at least one state dict")
    keys = list(states[0])
    for state in states[1:]:
        if list(state) != keys:
            raise ValueError("the fold models differ in their parameters: they cannot be averaged")
    soup: StateDict = {}
    for key in keys:
        tensors = [state[key] for state in states]
        if tensors[0].is_floating_point():
            soup[key] = torch.stack([t.detach().float().cpu() for t in tensors]).mean(0).to(tensors[0].dtype)
        else:
            soup[key] = tensors[0].detach().cpu().clone()
    return soup


@dataclass(frozen=True)
class SoupOutput:
    """The soup's weights and its reads of the run's holdout and non-coin photos (as a FoldOutput carries them)."""

    state: StateDict
    fresh_log_p: np.ndarray
    fresh_coin: np.ndarray
    negative_coin: np.ndarray


@dataclass(frozen=True)
class SoupDecision:
    """Holdout figures of both ways to combine the folds, and which one the version serves."""

    served: bool
    soup_exact: float
    soup_mae: float
    ensemble_exact: float
    ensemble_mae: float

    @property
    def reason(self) -> str:
        figures = (
            f"holdout exact {self.soup_exact:.1%} (MAE {self.soup_mae:.2f} y) for the averaged model against "
            f"{self.ensemble_exact:.1%} (MAE {self.ensemble_mae:.2f} y) for the ensemble"
        )
        return ("serving the averaged model: " if self.served else "serving the ensemble: ") + figures

    def metrics(self) -> dict[str, float]:
        return {
            "soup_served": float(self.served),
            "soup_holdout_exact": self.soup_exact,
            "soup_holdout_mae": self.soup_mae,
            "folds_ensemble_holdout_exact": self.ensemble_exact,
            "folds_ensemble_holdout_mae": self.ensemble_mae,
        }


def soup_wanted(config: TrainConfig, plan: FoldPlan) -> bool:
    """A soup is tried for the date reader with combine "soup" when some coins are held out to judge it on."""
    return config.head == "reader" and config.combine == "soup" and plan.holdout > 0


def make_soup(context: FoldContext, outputs: Sequence[FoldOutput], *, device: torch.device) -> SoupOutput | None:
    """Average the fold models, recompute the batch-norm statistics, read the holdout and the non-coin photos."""
    config = context.config
    if not soup_wanted(config, context.plan) or len(outputs) < 2 or context.negatives is None:
        return None
    model = build_model(dataclasses.replace(config, init_from=None, weights_path=None))
    if not isinstance(model, CoinDateModel):
        return None
    model.load_state_dict(uniform_soup([output.state for output in sorted(outputs, key=lambda o: o.fold)]))
    model.to(device)
    cv_index = context.plan.cv_index
    chosen = cv_index
    if len(cv_index) > SOUP_BATCHNORM_COINS:
        pick = np.random.default_rng(config.seed + 7).choice(len(cv_index), SOUP_BATCHNORM_COINS, replace=False)
        chosen = cv_index[np.sort(pick)]
    loader = make_loader(Subset(context.eval_view, chosen.tolist()), batch_size=2 * config.batch_size, shuffle=False)
    recalibrate_batchnorm(model, loader, device=device)
    fresh_log_p, fresh_coin = reader_outputs(model, context.fresh_loader, device=device)
    negative_coin = reader_outputs(model, context.negatives, device=device)[1]
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return SoupOutput(state, fresh_log_p, fresh_coin, negative_coin)


def decide(soup_metrics: Mapping[str, float], ensemble_metrics: Mapping[str, float]) -> SoupDecision:
    """Serve the soup unless it reads the holdout clearly worse than the ensemble (calibrate_reader's metrics)."""
    soup_exact, soup_mae = float(soup_metrics["ensemble_exact"]), float(soup_metrics["ensemble_mae"])
    ensemble_exact, ensemble_mae = float(ensemble_metrics["ensemble_exact"]), float(ensemble_metrics["ensemble_mae"])
    served = soup_exact >= ensemble_exact - SOUP_EXACT_TOLERANCE and soup_mae <= ensemble_mae + SOUP_MAE_TOLERANCE
    return SoupDecision(served, soup_exact, soup_mae, ensemble_exact, ensemble_mae)
