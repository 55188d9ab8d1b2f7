"""Pretraining the base date reader on generated coins (nothing downloaded).

Text recognisers are routinely pretrained on purely synthetic text (Jaderberg et al. 2014); here the coin generator
draws many coins with known years and knows where it drew each date, which gives the reader its location and digit
targets. Every training can then start from this base (``init_from: base``) and only adapt to the coins it is shown.

Photos go through the serving path (JPEG bytes -> images.load_uint8 -> Normalize), so the base model sees exactly
what serving will give it. Generated photos are cached in memory as uint8 (2 x 3 x 192 x 192 per coin, 221 KB).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from training.ml import images, negatives, synthetic

# Re-exported (`X as X`): the pretrain command and registered versions' code name these as pretrain.<Name>.
from training.ml.base_reader import BASE_DIR as BASE_DIR
from training.ml.base_reader import BASE_LINEAGE as BASE_LINEAGE
from training.ml.base_reader import BASE_WEIGHTS as BASE_WEIGHTS
from training.ml.base_reader import load_base_state as load_base_state
from training.ml.base_reader import save_base as save_base
from training.ml.config import TrainConfig
from training.ml.reader import (
    DateReaderNet,
    ReaderLossWeights,
    ReaderTargets,
    date_cell_index,
    reader_loss,
    year_log_probs,
)

DEFAULT_MANIFEST = BASE_DIR / "configs" / "pretrain.yaml"
GENERATOR_VERSION = "synthetic-3"  # 3: the "assorted" style (classic coins unchanged)


@dataclass(frozen=True)
class PretrainConfig:
    """The pretraining manifest (configs/pretrain.yaml)."""

    count: int = 6000
    seed: int = 1001
    negatives: int = 1500
    generate_size: int = 256
    image_size: int = 192
    reader_width: int = 64
    year_min: int = 1700
    year_max: int = 2025
    steps: int = 3000
    batch_size: int = 32
    negative_pairs: int = 6
    lr: float = 2e-3
    weight_decay: float = 1e-4
    eval_count: int = 300
    eval_seed: int = 777001
    eval_every: int = 500
    resume: bool = False  # continue from the current base weights (its lineage is kept as "resumed_from")
    assorted_share: float = 0.0  # share of coins in the "assorted" style (any alloy, the date anywhere, pen digits)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> PretrainConfig:
        data = yaml.safe_load(Path(path or DEFAULT_MANIFEST).read_text()) or {}
        data.update(overrides or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown pretrain key(s): {', '.join(unknown)}")
        return cls(**data)

    def train_config(self) -> TrainConfig:
        """The TrainConfig whose reader has this base's shape (what init_from: base must match)."""
        return TrainConfig(
            head="reader",
            init_from=None,  # this is the base: pretraining starts from nothing
            image_size=self.image_size,
            reader_width=self.reader_width,
            year_min=self.year_min,
            year_max=self.year_max,
        )


@dataclass
class GeneratedSet:
    """uint8 photos (N, 2, C, S, S), years (N,), date layout (N, 3): side, x, y (side -1: no date drawn)."""

    photos: torch.Tensor
    years: np.ndarray
    layout: np.ndarray


def coin_style(i: int, seed: int, assorted_share: float) -> str:
    """The generator style of the i-th pretraining coin: deterministic in (seed, i)."""
    draw = np.random.default_rng(np.random.SeedSequence([int(seed) & (2**63 - 1), i, 0xA550])).random()
    return "assorted" if draw < assorted_share else "classic"


def _render_coins(
    args: tuple[int, int, int, int, int, int, int, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    start, stop, seed, size, image_size, year_min, year_max, assorted_share = args
    torch.set_num_threads(1)
    config = TrainConfig(image_size=image_size, year_min=year_min, year_max=year_max)
    photos, years, layout = [], [], []
    for i in range(start, stop):
        year, coin_seed = synthetic.coin_plan(i, seed, year_min, year_max)
        style = coin_style(i, seed, assorted_share)
        front, back, where = synthetic.generate_coin_with_layout(year, coin_seed, size=size, style=style)
        photos.append(torch.stack([images.load_uint8(front, config), images.load_uint8(back, config)]).numpy())
        years.append(year)
        layout.append((where.side, where.x, where.y) if where else (-1, 0.5, 0.5))
    return np.stack(photos), np.asarray(years), np.asarray(layout, dtype=np.float32)


def _render_negatives(args: tuple[int, int, int, int, int, tuple[str, ...]]) -> np.ndarray:
    start, stop, seed, size, image_size, kinds = args
    torch.set_num_threads(1)
    config = TrainConfig(image_size=image_size)
    out = [
        images.load_uint8(
            negatives.generate_negative_jpeg(seed * 1_000_003 + i, size=size, kinds=kinds), config
        ).numpy()
        for i in range(start, stop)
    ]
    return np.stack(out)


def _chunks(count: int, workers: int) -> list[tuple[int, int]]:
    step = max(1, math.ceil(count / (workers * 8)))
    return [(s, min(s + step, count)) for s in range(0, count, step)]


def generate_coins(
    count: int,
    seed: int,
    *,
    size: int,
    image_size: int,
    year_min: int,
    year_max: int,
    assorted_share: float = 0.0,
    workers: int = 2,
    progress: bool = False,
) -> GeneratedSet:
    """``count`` generated coins through the serving preprocessing, rendered by ``workers`` processes."""
    jobs = [(a, b, seed, size, image_size, year_min, year_max, assorted_share) for a, b in _chunks(count, workers)]
    parts = _map(_render_coins, jobs, workers, progress, "coins")
    return GeneratedSet(
        torch.from_numpy(np.concatenate([p[0] for p in parts])),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def generate_negative_photos(
    count: int,
    seed: int,
    *,
    size: int,
    image_size: int,
    kinds: tuple[str, ...] = negatives.TRAIN_KINDS,
    workers: int = 2,
    progress: bool = False,
) -> torch.Tensor:
    jobs = [(a, b, seed, size, image_size, kinds) for a, b in _chunks(count, workers)]
    return torch.from_numpy(np.concatenate(_map(_render_negatives, jobs, workers, progress, "not-coins")))


def _map(fn: Callable, jobs: list, workers: int, progress: bool, desc: str) -> list:
    if workers <= 1:
        it = map(fn, jobs)
        return list(tqdm(it, total=len(jobs), desc=desc) if progress else it)
    with get_context("spawn").Pool(workers) as pool:
        it = pool.imap(fn, jobs)
        return list(tqdm(it, total=len(jobs), desc=desc) if progress else it)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 where the hardware runs it fast (CUDA, or a CPU with AMX/AVX512-BF16), else None (float32)."""
    if device.type == "cuda":
        return torch.bfloat16
    try:
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    except (AttributeError, RuntimeError):  # pragma: no cover
        return None


def reader_batch(
    net_config: TrainConfig,
    transform: images.CoinTransform,
    photos: torch.Tensor,
    years: torch.Tensor,
    layout: torch.Tensor | None,
    negative_photos: torch.Tensor | None,
    negative_pairs: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, ReaderTargets]:
    """Augmented (front, back) and targets for a batch of coin pairs plus ``negative_pairs`` non-coin pairs.

    A non-coin pair has two non-coin photos, or one coin photo and one non-coin photo (a coin beside a cat is
    still not a coin pair): either way its year is unknown (-1) and the photos are labelled one by one.
    """
    n = photos.shape[0]
    grid = net_config.image_size // 8
    front_u8, back_u8 = photos[:, 0], photos[:, 1]
    is_coin = torch.ones(n, 2)
    year_index = years.long() - net_config.year_min
    date_cell = torch.full((n,), -1, dtype=torch.long)
    points = None
    if layout is not None:
        points = layout[:, 1:3] * 2 - 1  # share of the photo -> grid_sample's [-1, 1]
    if negative_photos is not None and negative_pairs:
        pick = torch.randint(len(negative_photos), (negative_pairs, 2), generator=generator)
        neg_front, neg_back = negative_photos[pick[:, 0]], negative_photos[pick[:, 1]]
        mixed = torch.rand(negative_pairs, generator=generator) < 0.4  # one side a coin photo
        source = torch.randint(n, (negative_pairs,), generator=generator)
        keep_front = torch.rand(negative_pairs, generator=generator) < 0.5
        neg_front = torch.where((mixed & keep_front)[:, None, None, None], front_u8[source], neg_front)
        neg_back = torch.where((mixed & ~keep_front)[:, None, None, None], back_u8[source], neg_back)
        neg_coin = torch.stack([(mixed & keep_front).float(), (mixed & ~keep_front).float()], 1)
        front_u8, back_u8 = torch.cat([front_u8, neg_front]), torch.cat([back_u8, neg_back])
        is_coin = torch.cat([is_coin, neg_coin])
        year_index = torch.cat([year_index, torch.full((negative_pairs,), -1, dtype=torch.long)])
        date_cell = torch.cat([date_cell, torch.full((negative_pairs,), -1, dtype=torch.long)])
        if points is not None:
            points = torch.cat([points, torch.zeros(negative_pairs, 2)])
    if points is not None:
        side = torch.cat([layout[:, 0], torch.full((len(points) - n,), -1.0)])
        front_points, back_points = points.clone(), points.clone()
        front = _augmented(transform, front_u8, generator, front_points)
        back = _augmented(transform, back_u8, generator, back_points)
        moved = torch.where((side == 1)[:, None], back_points, front_points)
        inside = (side >= 0) & (moved.abs() < 0.98).all(1)
        cells = date_cell_index(side.clamp_min(0), (moved[:, 0] + 1) / 2, (moved[:, 1] + 1) / 2, grid)
        date_cell = torch.where(inside, cells, date_cell)
    else:
        front = _augmented(transform, front_u8, generator, None)
        back = _augmented(transform, back_u8, generator, None)
    return front, back, ReaderTargets(year_index=year_index, date_cell=date_cell, is_coin=is_coin)


def _augmented(
    transform: images.CoinTransform, batch: torch.Tensor, generator: torch.Generator, points
) -> torch.Tensor:
    x = transform.augment(batch, generator, points) if transform.augment is not None else batch.float()
    return transform.normalize(x).contiguous(memory_format=torch.channels_last)


@dataclass(frozen=True)
class ReaderEval:
    """Reading quality on held-out coins: exact (|error| <= 1), MAE, coverage of the level interval, and the
    not-a-coin rates."""

    n: int
    exact: float
    mae: float
    baseline_mae: float
    coin_accept: float
    negative_reject: float


@torch.inference_mode()
def evaluate_reader(
    net: DateReaderNet,
    transform: images.CoinTransform,
    coins: GeneratedSet,
    negative_photos: torch.Tensor | None,
    *,
    batch_size: int = 64,
) -> ReaderEval:
    net.eval()
    years = torch.arange(net.year_min, net.year_max + 1)
    predicted, coin_scores = [], []
    for start in range(0, len(coins.years), batch_size):
        chunk = coins.photos[start : start + batch_size]
        out = net(transform.batch(chunk[:, 0]), transform.batch(chunk[:, 1]))
        predicted.append(years[year_log_probs(out, net.year_digits).argmax(1)])
        coin_scores.append(torch.sigmoid(out.coin).amin(1))
    negative_scores = []
    if negative_photos is not None:
        for start in range(0, len(negative_photos), batch_size):
            chunk = negative_photos[start : start + batch_size]
            out = net(transform.batch(chunk), transform.batch(chunk))
            negative_scores.append(torch.sigmoid(out.coin).amin(1))
    error = (torch.cat(predicted).numpy() - coins.years).astype(np.float64)
    median = float(np.median(coins.years))
    return ReaderEval(
        n=len(error),
        exact=float(np.mean(np.abs(error) <= 1)),
        mae=float(np.mean(np.abs(error))),
        baseline_mae=float(np.mean(np.abs(coins.years - median))),
        coin_accept=float((torch.cat(coin_scores) >= 0.5).float().mean()),
        negative_reject=float((torch.cat(negative_scores) < 0.5).float().mean()) if negative_scores else float("nan"),
    )


@dataclass
class _GeneratedSets:
    """What pretraining reads: the training coins and non-coin photos, and the held-out ones it is evaluated on."""

    coins: GeneratedSet
    negative_photos: torch.Tensor
    held_out: GeneratedSet
    held_out_negatives: torch.Tensor


def pretrain(
    config: PretrainConfig,
    *,
    device: torch.device | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> tuple[DateReaderNet, dict[str, Any]]:
    """Generate, train and evaluate the base reader; returns it and its lineage (metrics, history). The steps:
    generate the sets (_pretrain_sets), build or resume the net (_pretrain_net), train with a held-out evaluation
    every ``eval_every`` steps (_pretrain_loop), and describe the result (_pretrain_lineage)."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    log(f"generating {config.count} coins and {config.negatives} non-coin photos (seed {config.seed})")
    sets = _pretrain_sets(config, progress)
    generated_s = time.perf_counter() - started
    net, resumed_from = _pretrain_net(config, device, log)
    history = _pretrain_loop(config, net, sets, device=device, progress=progress, log=log)
    seconds = {"generate": generated_s, "total": time.perf_counter() - started}
    return net.cpu().eval(), _pretrain_lineage(config, history, seconds, device, resumed_from)


def _pretrain_sets(config: PretrainConfig, progress: bool) -> _GeneratedSets:
    sizes = {"size": config.generate_size, "image_size": config.image_size}
    years = {"year_min": config.year_min, "year_max": config.year_max}
    coins = generate_coins(
        config.count, config.seed, **sizes, **years, assorted_share=config.assorted_share, progress=progress
    )
    negative_photos = generate_negative_photos(config.negatives, config.seed, **sizes, progress=progress)
    held_out = generate_coins(config.eval_count, config.eval_seed, **sizes, **years)
    held_out_negatives = generate_negative_photos(
        config.eval_count, config.eval_seed, **sizes, kinds=negatives.ALL_KINDS
    )
    return _GeneratedSets(coins, negative_photos, held_out, held_out_negatives)


def _pretrain_net(
    config: PretrainConfig, device: torch.device, log: Callable[[str], None]
) -> tuple[DateReaderNet, dict[str, Any] | None]:
    """A fresh reader, or (``resume``) the current base and its lineage."""
    net = (
        DateReaderNet(in_channels=3, width=config.reader_width, year_min=config.year_min, year_max=config.year_max)
        .to(device)
        .to(memory_format=torch.channels_last)
    )
    resumed_from = None
    if config.resume:
        state, _ = load_base_state()
        net.load_state_dict(state)
        resumed_from = json.loads(BASE_LINEAGE.read_text()) if BASE_LINEAGE.is_file() else None
        log(f"resuming from the current base ({(resumed_from or {}).get('metrics')})")
    return net, resumed_from


def _pretrain_loop(
    config: PretrainConfig,
    net: DateReaderNet,
    sets: _GeneratedSets,
    *,
    device: torch.device,
    progress: bool,
    log: Callable[[str], None],
) -> list[dict[str, float]]:
    """AdamW with one-cycle learning rates over ``steps`` batches; returns the held-out evaluations as history."""
    net_config = config.train_config()
    train_transform = images.build_transforms(net_config, train=True)
    eval_transform = images.build_transforms(net_config, train=False)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.steps, pct_start=0.1, div_factor=10, final_div_factor=100
    )
    dtype = autocast_dtype(device)
    generator = torch.Generator().manual_seed(config.seed)
    layout = torch.from_numpy(sets.coins.layout)
    years = torch.from_numpy(sets.coins.years)
    history: list[dict[str, float]] = []
    steps = range(config.steps)
    if progress:
        steps = tqdm(steps, desc="pretrain", unit="step")
    running: dict[str, float] = {}
    for step in steps:
        net.train()
        index = torch.randint(len(years), (config.batch_size,), generator=generator)
        front, back, targets = reader_batch(
            net_config,
            train_transform,
            sets.coins.photos[index],
            years[index],
            layout[index],
            sets.negative_photos,
            config.negative_pairs,
            generator,
        )
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            output = net(front.to(device), back.to(device))
        loss, parts = reader_loss(output, _to(targets, device), net.year_digits, net.years, ReaderLossWeights())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimizer.step()
        scheduler.step()
        for key, value in parts.items():
            running[key] = 0.98 * running.get(key, value) + 0.02 * value
        if progress:
            steps.set_postfix({k: f"{v:.3f}" for k, v in running.items()})
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            result = evaluate_reader(net, eval_transform, sets.held_out, sets.held_out_negatives)
            history.append({"step": step + 1, **running, **dataclasses.asdict(result)})
            log(
                f"step {step + 1}: exact {result.exact:.1%}  MAE {result.mae:.2f} (baseline {result.baseline_mae:.1f})"
                f"  coins accepted {result.coin_accept:.1%}  not-coins rejected {result.negative_reject:.1%}"
            )
    return history


def _pretrain_lineage(
    config: PretrainConfig,
    history: list[dict[str, float]],
    seconds: dict[str, float],
    device: torch.device,
    resumed_from: dict[str, Any] | None,
) -> dict[str, Any]:
    final = history[-1] if history else {}
    return {
        "generator_version": GENERATOR_VERSION,
        "manifest": dataclasses.asdict(config),
        "train_config": config.train_config().to_dict(),
        "metrics": {
            k: final[k] for k in ("exact", "mae", "baseline_mae", "coin_accept", "negative_reject") if k in final
        },
        "history": history,
        "seconds": seconds,
        "device": str(device),
        "resumed_from": resumed_from,
    }


def _to(targets: ReaderTargets, device: torch.device) -> ReaderTargets:
    return ReaderTargets(*(getattr(targets, f.name).to(device) for f in dataclasses.fields(targets)))
