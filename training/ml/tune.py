"""Hyperparameter sweeps, Django-free: the YAML search space, Optuna's sampler and pruner, the cross-validated
objective with per-epoch pruning, and the plots of a finished study.

Optuna does the scheduling (no home-made one): each trial asks the study (RDB storage, shared by every worker) for
its parameters, trains, reports its validation MAE after every epoch (the pruner may stop it) and tells the study its
value. The Django side (training.services.sweeps) turns each trial into a Celery task and keeps the lease.

The objective is the K-fold cross-validated MAE in years, on the same folds for every trial: fold_plan() depends only
on the seed, the number of folds, the calibration share and the number of coins, and a space may not search those
(SearchSpace refuses them). The default configuration is trial 0 (enqueued before the sampler's first guess), so a
sweep's best value is never read without the value of what owners train today beside it, on the same folds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import yaml

from training.ml.config import TrainConfig
from training.ml.labels import CoinSample

if TYPE_CHECKING:
    import torch

    from training.ml.train import OnEpoch, ShouldStop

# Knobs that are not TrainConfig fields: aug_strength scales the five augmentation amounts of the base config at once.
DERIVED = ("aug_strength",)
AUGMENTATION = ("aug_rotation", "aug_scale", "aug_translate", "aug_color", "aug_blur")
AUG_LIMITS = {"aug_rotation": 45.0, "aug_scale": 0.49, "aug_translate": 0.49, "aug_color": 0.99, "aug_blur": 1.0}
# A space that searched these would compare trials on different coins: the folds must be the same for every trial.
FOLD_KEYS = ("seed", "folds", "calibration_share")
KINDS = ("float", "int", "categorical")
PRUNERS = ("median", "hyperband", "none")


class SearchSpaceError(ValueError):
    """The YAML search space is wrong; the message names the parameter and the reason."""


@dataclass(frozen=True)
class ParamSpec:
    """One searched parameter: a float or int range (optionally log-uniform, or stepped), or a list of choices.

    ``when`` makes it conditional: {"head": ["regression"]} = only suggested when `head` was suggested (or is fixed)
    as one of those values; otherwise the base config's value stands."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, name: str, raw: Any) -> ParamSpec:
        if isinstance(raw, list):
            raw = {"choices": raw}
        if not isinstance(raw, Mapping):
            raise SearchSpaceError(f"{name}: a list of choices or a mapping with low/high or choices, got {raw!r}")
        unknown = set(raw) - {"type", "low", "high", "log", "step", "choices", "when"}
        if unknown:
            raise SearchSpaceError(f"{name}: unknown key(s) {', '.join(sorted(unknown))}")
        kind = raw.get("type") or ("categorical" if "choices" in raw else "float")
        if kind not in KINDS:
            raise SearchSpaceError(f"{name}: type must be one of {', '.join(KINDS)}, got {kind!r}")
        when = {str(k): tuple(v if isinstance(v, list) else [v]) for k, v in (raw.get("when") or {}).items()}
        if kind == "categorical":
            choices = tuple(raw.get("choices") or ())
            if not choices:
                raise SearchSpaceError(f"{name}: categorical needs a non-empty list of choices")
            return cls(name, kind, choices=choices, when=when)
        if "low" not in raw or "high" not in raw:
            raise SearchSpaceError(f"{name}: a {kind} range needs low and high")
        low, high = float(raw["low"]), float(raw["high"])
        if not low < high:
            raise SearchSpaceError(f"{name}: low ({low}) must be below high ({high})")
        log = bool(raw.get("log", False))
        if log and low <= 0:
            raise SearchSpaceError(f"{name}: a log-uniform range needs low > 0")
        step = raw.get("step")
        return cls(name, kind, low, high, log, None if step is None else float(step), when=when)

    def active(self, chosen: Mapping[str, Any]) -> bool:
        return all(chosen.get(key) in values for key, values in self.when.items())

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            step = int(self.step or 1)
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=step, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)

    def clip(self, value: Any) -> Any:
        """``value`` if the spec can draw it, else the nearest value it can (the first choice for a categorical)."""
        if self.kind == "categorical":
            return value if value in self.choices else self.choices[0]
        clipped = min(max(float(value), float(self.low)), float(self.high))
        return int(round(clipped)) if self.kind == "int" else clipped

    @property
    def largest(self) -> float:
        """The largest value it can take (the epochs bound of the pruner's steps)."""
        if self.kind == "categorical":
            return max(float(c) for c in self.choices)
        return float(self.high)


@dataclass(frozen=True)
class SearchSpace:
    """What a sweep searches (``params``, in suggestion order: a condition names an earlier parameter), what it fixes
    for every trial (``fixed``: config overrides, e.g. fewer epochs than a normal run), and its pruner."""

    params: tuple[ParamSpec, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    pruner: str = "median"
    startup_trials: int = 4  # trials the sampler draws at random, and the median pruner never prunes before

    @classmethod
    def from_dict(cls, data: Any) -> SearchSpace:
        if not isinstance(data, Mapping) or not isinstance(data.get("params"), Mapping) or not data["params"]:
            raise SearchSpaceError("the search space needs a non-empty `params:` mapping of name: range or choices")
        unknown = set(data) - {"params", "fixed", "pruner", "startup_trials"}
        if unknown:
            raise SearchSpaceError(f"unknown top-level key(s): {', '.join(sorted(unknown))}")
        known = {f.name for f in dataclasses.fields(TrainConfig)} | set(DERIVED)
        params = tuple(ParamSpec.parse(str(name), raw) for name, raw in data["params"].items())
        fixed = dict(data.get("fixed") or {})
        seen: set[str] = set()
        for spec in params:
            if spec.name not in known:
                raise SearchSpaceError(f"{spec.name}: not a training config key (known: {', '.join(sorted(known))})")
            if spec.name in FOLD_KEYS:
                raise SearchSpaceError(f"{spec.name}: cannot be searched, every trial must use the same folds")
            for key in spec.when:
                if key not in seen and key not in fixed:
                    raise SearchSpaceError(f"{spec.name}: its condition names {key}, which is not searched before it")
            seen.add(spec.name)
        for key in fixed:
            if key not in known:
                raise SearchSpaceError(f"fixed.{key}: not a training config key")
        pruner = str(data.get("pruner", "median"))
        if pruner not in PRUNERS:
            raise SearchSpaceError(f"pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
        startup = int(data.get("startup_trials", 4))
        if startup < 0:
            raise SearchSpaceError("startup_trials must be >= 0")
        return cls(params, fixed, pruner, startup)

    @classmethod
    def load(cls, path: str | Path) -> SearchSpace:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError as error:
            raise SearchSpaceError(f"search space file not found: {path}") from error
        try:
            return cls.from_dict(yaml.safe_load(text))
        except yaml.YAMLError as error:
            raise SearchSpaceError(f"{path}: not valid YAML ({error})") from error

    def to_dict(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for spec in self.params:
            raw: dict[str, Any] = {"type": spec.kind}
            if spec.kind == "categorical":
                raw["choices"] = list(spec.choices)
            else:
                raw.update(low=spec.low, high=spec.high, log=spec.log)
                if spec.step is not None:
                    raw["step"] = spec.step
            if spec.when:
                raw["when"] = {k: list(v) for k, v in spec.when.items()}
            params[spec.name] = raw
        return {
            "params": params,
            "fixed": dict(self.fixed),
            "pruner": self.pruner,
            "startup_trials": self.startup_trials,
        }

    def suggest(self, trial: optuna.Trial, base: TrainConfig) -> dict[str, Any]:
        """The trial's parameters: every active spec in order (a condition sees the earlier choices, the fixed
        values, then the base config's)."""
        context = {**base.to_dict(), **self.fixed}
        chosen: dict[str, Any] = {}
        for spec in self.params:
            if spec.active({**context, **chosen}):
                chosen[spec.name] = spec.suggest(trial)
        return chosen

    def max_epochs(self, base: TrainConfig) -> int:
        """The most epochs one fold can train: the pruner's step is fold * max_epochs + epoch."""
        for spec in self.params:
            if spec.name == "epochs":
                return int(spec.largest)
        return int(self.fixed.get("epochs", base.epochs))

    def defaults(self, base: TrainConfig) -> dict[str, Any]:
        """The base configuration expressed in this space's parameters (trial 0: what owners train today), each value
        clipped into its range (configs/default.yaml's 20 epochs become the space's most) or, when it is not one of
        the choices, the first choice: a trial outside the space would break the pruner's steps."""
        values = {**base.to_dict(), **self.fixed, "aug_strength": 1.0}
        chosen: dict[str, Any] = {}
        for spec in self.params:
            if spec.active({**values, **chosen}):
                chosen[spec.name] = spec.clip(values[spec.name])
        return chosen


def trial_config(base: TrainConfig, space: SearchSpace, params: Mapping[str, Any]) -> TrainConfig:
    """base + the space's fixed values + the trial's parameters (aug_strength scales the base's augmentation)."""
    values = {**base.to_dict(), **space.fixed}
    for name, value in params.items():
        if name == "aug_strength":
            for key in AUGMENTATION:
                values[key] = min(AUG_LIMITS[key], float(values[key]) * float(value))
            values["augment"] = float(value) > 0
        else:
            values[name] = value
    return TrainConfig.from_dict(values)


def config_overrides(config: TrainConfig, base: TrainConfig) -> list[str]:
    """`key=value` overrides that turn ``base`` into ``config`` (what a normal training run of the best trial gets)."""
    ours, theirs = config.to_dict(), base.to_dict()
    return [
        f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
        for key, value in ours.items()
        if theirs.get(key) != value
    ]


def make_sampler(space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    """TPE, multivariate (learning rate and batch size interact), with the constant liar so that two workers asking
    at once do not get the same guess (running trials count as bad for the other worker's draw)."""
    return optuna.samplers.TPESampler(
        seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=space.startup_trials
    )


def make_pruner(space: SearchSpace, base: TrainConfig) -> optuna.pruners.BasePruner:
    """Median: prune a trial whose best fold MAE so far is worse than the median of earlier trials at the same step
    (fold and epoch), once startup_trials finished and from the second epoch on. Hyperband: successive halving over
    folds x epochs."""
    if space.pruner == "none":
        return optuna.pruners.NopPruner()
    if space.pruner == "hyperband":
        folds = int(space.fixed.get("folds", base.folds))
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=folds * space.max_epochs(base))
    return optuna.pruners.MedianPruner(n_startup_trials=space.startup_trials, n_warmup_steps=2)


def study_load(
    *, name: str, storage: optuna.storages.BaseStorage | str, space: SearchSpace, base: TrainConfig, seed: int = 42
) -> optuna.Study:
    """The sweep's study (created when missing): every worker loads the same one from the shared storage."""
    return optuna.create_study(
        study_name=name,
        storage=storage,
        direction="minimize",
        sampler=make_sampler(space, seed),
        pruner=make_pruner(space, base),
        load_if_exists=True,
    )


def rdb_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's tables in the project's database. Connections are checked before use (a worker idles for minutes
    between trials; PostgreSQL may have closed them); SQLite waits up to 30 s for a lock, as Django's settings do."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=None)


@dataclass
class TrialReport:
    """The outcome of one objective evaluation: the mean of the folds' best validation MAEs, and each fold's."""

    value: float
    fold_maes: list[float]
    epochs: int


Report = Callable[[int, float], None]


def cv_objective(
    config: TrainConfig,
    samples: Sequence[CoinSample],
    *,
    max_epochs: int,
    report: Report | None = None,
    on_epoch: OnEpoch | None = None,
    should_stop: ShouldStop | None = None,
    device: str | torch.device | None = None,
) -> TrialReport:
    """K-fold CV MAE (years) of ``config`` on the folds of fold_plan(config, len(samples)).

    After every epoch ``report(step, best_fold_mae_so_far)`` with step = fold * max_epochs + epoch; it raises
    optuna.TrialPruned to stop the trial (the pruner said so). The folds' best-epoch MAE, as a normal run keeps its
    best checkpoint; the fold-specific parts of a run (coin head, calibration, soup) are left out: they do not
    depend on the searched parameters' ranking and cost a fifth of a fold."""
    from torch.utils.data import Subset  # lazy: torch only where a trial trains (the admin imports this module)

    from training.ml.data import CoinPairDataset  # lazy: as torch
    from training.ml.folds import fold_plan  # lazy: as torch
    from training.ml.train import select_device, train_fold  # lazy: as torch

    device = select_device(device)
    samples = list(samples)
    plan = fold_plan(config, len(samples))
    dataset = CoinPairDataset(samples, config, train=True).preload()
    eval_view = dataset.view(train=False)
    fold_maes: list[float] = []
    epochs = 0
    for fold, (train_pos, val_pos) in enumerate(plan.folds):
        train_idx, val_idx = plan.cv_index[train_pos], plan.cv_index[val_pos]

        def epoch_hook(fold_number: int, epoch: int, metrics: dict[str, float], fold: int = fold) -> None:
            if on_epoch is not None:
                on_epoch(fold_number, epoch, metrics)
            if report is not None:
                report(fold * max_epochs + epoch, float(metrics["best_val_mae"]))

        _model, summary = train_fold(
            config,
            Subset(dataset, train_idx.tolist()),
            Subset(eval_view, val_idx.tolist()),
            fold=fold,
            device=device,
            on_epoch=epoch_hook,
            should_stop=should_stop,
        )
        fold_maes.append(float(summary["best_val_mae"]))
        epochs += int(summary["epochs_trained"])
    value = float(np.mean(fold_maes))
    if not math.isfinite(value):
        raise ValueError(f"the objective is not finite ({value}): the trial diverged")
    return TrialReport(value=value, fold_maes=fold_maes, epochs=epochs)


def trials_table(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial (number, state, value, params, duration, last reported step), for the admin and MLflow."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name.lower(),
                "value": trial.value,
                "params": dict(trial.params),
                "seconds": duration,
                "last_step": trial.last_step,
                "user_attrs": dict(trial.user_attrs),
            }
        )
    return rows


PLOTS = {
    "plots/optimization_history.png": "plot_optimization_history",
    "plots/param_importances.png": "plot_param_importances",
    "plots/parallel_coordinate.png": "plot_parallel_coordinate",
}


def study_figures(study: optuna.Study) -> dict[str, Any]:
    """Optuna's matplotlib plots of the study, by artifact name; a plot Optuna cannot draw (importances need two
    finished trials with varying parameters) is left out rather than failing the sweep's ending."""
    import matplotlib  # noqa: PLC0415 - the Agg backend before pyplot; only a finishing sweep draws

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as plots  # noqa: PLC0415 - imports pyplot

    figures = {}
    for name, function in PLOTS.items():
        try:
            axes = getattr(plots, function)(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue
        axes = axes.flat[0] if isinstance(axes, np.ndarray) else axes
        figure = axes.get_figure()
        figure.set_size_inches(9, 5)
        figure.tight_layout()
        figures[name] = figure
    return figures
