"""make bench-train: the real training input pipeline against a bare PyTorch loop on the same model.

Real: JPEG pairs on disk -> read_labels_csv -> CoinPairDataset (decoded once, batched augmentation) -> DataLoader
-> train.train_one_epoch. Bare: the same photos already decoded and normalised in two tensors, a random permutation
and a plain forward/backward/step loop. Same model, init, optimizer, batch size and memory format; epochs are
interleaved (bare, real, bare, real ...) so that a busy machine slows both alike. Prints seconds per epoch, the
ratio (target <= 1.15), pairs/s and the real pipeline's peak RSS (target < 2 GB), taken before the bare loop's
copy of the photos exists.

    python scripts/bench_train.py [--pairs 800] [--epochs 3] [--data DIR] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from training.ml.config import load_config  # noqa: E402
from training.ml.data import CoinPairDataset, make_loader, read_labels_csv  # noqa: E402
from training.ml.model import CoinDateModel, build_model  # noqa: E402
from training.ml.train import prepare_model, reader_autocast, select_device, train_one_epoch  # noqa: E402

TARGET_RATIO = 1.15
TARGET_RSS_GB = 2.0


def write_pairs(folder: Path, count: int, seed: int) -> None:
    """Coin pairs as JPEG files + labels.csv: synthetic coins when that module exists, else noisy gradients."""
    try:
        from training.ml import synthetic
    except ImportError:
        synthetic = None
    if synthetic is not None:
        synthetic.write_dataset(folder, count=count, seed=seed, progress=True)
        return
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = ["front,back,year"]
    for i in range(count):
        year = int(rng.integers(1700, 2026))
        for side in ("front", "back"):
            pixels = rng.normal(128, 40, (256, 256, 3)).clip(0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
            (folder / f"{i:05d}_{side}.jpg").write_bytes(buffer.getvalue())
        rows.append(f"{i:05d}_front.jpg,{i:05d}_back.jpg,{year}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")


def pre_decoded(plain: CoinPairDataset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All photos as normalised float tensors (what a bare loop starts from), built in chunks to bound the peak."""
    n, c, s = len(plain), plain.config.in_channels, plain.config.image_size
    fronts, backs = torch.empty(n, c, s, s), torch.empty(n, c, s, s)
    for start in range(0, n, 64):
        index = list(range(start, min(n, start + 64)))
        fronts[index[0] : index[-1] + 1], backs[index[0] : index[-1] + 1], _, _ = plain.batch(index)
    return fronts, backs, plain.targets.clone()


def bare_epoch(model, optimizer, fronts, backs, targets, batch_size: int, device, generator) -> float:
    """The reference: pre-decoded tensors, a permutation, forward/backward/step. Returns seconds."""
    started = time.perf_counter()
    model.train()
    order = torch.randperm(len(targets), generator=generator)
    for start in range(0, len(order) - batch_size + 1, batch_size):
        index = order[start : start + batch_size]
        front = fronts[index].to(device).contiguous(memory_format=torch.channels_last)
        back = backs[index].to(device).contiguous(memory_format=torch.channels_last)
        target = targets[index].to(device)
        if isinstance(model, CoinDateModel):  # the date reader: its own loss, under the pipeline's autocast
            with reader_autocast(device):
                loss = model.training_loss(front, back, target, torch.ones_like(target))
        else:
            loss = (model(front, back) - target).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pairs", type=int, default=800, help="coin pairs per epoch (default 800: 1000 coins, 5 folds)"
    )
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs of each kind, after one warm-up each")
    parser.add_argument("--data", type=Path, help="an existing folder with labels.csv (default: generate pairs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    config = load_config(overrides=args.overrides)
    device = select_device()
    print(
        f"config: {config.head if config.head == 'reader' else config.backbone + ' ' + config.mode} {config.image_size}px batch {config.batch_size} "
        f"augment={config.augment}; device {device}; torch threads {torch.get_num_threads()}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        folder = args.data or Path(tmp)
        if args.data is None:
            started = time.perf_counter()
            write_pairs(folder, args.pairs, args.seed)
            print(f"generated {args.pairs} JPEG pairs in {time.perf_counter() - started:.1f}s", flush=True)
        samples, errors = read_labels_csv(folder, check_images=False)
        samples = samples[: args.pairs]
        if errors:
            print(f"{len(errors)} labels.csv rows skipped, first: {errors[0]}")

        dataset = CoinPairDataset(samples, config, train=True)
        started = time.perf_counter()
        dataset.preload()
        decode_seconds = time.perf_counter() - started
        loader = make_loader(dataset, batch_size=config.batch_size, shuffle=True, seed=args.seed, drop_last=True)

        torch.manual_seed(args.seed)
        real_model = prepare_model(build_model(config), device)
        real_opt = torch.optim.AdamW(real_model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        # The real pipeline's footprint is read after its warm-up epoch, before the bare loop's float copy of every
        # photo exists (800 pairs at 192 px: 708 MB that only the benchmark needs).
        real_warm_up = train_one_epoch(real_model, loader, real_opt, device=device)["seconds"]
        real_rss_gb = _peak_rss_gb()

        fronts, backs, targets = pre_decoded(dataset.view(train=False))
        torch.manual_seed(args.seed)
        bare_model = prepare_model(build_model(config), device)
        bare_opt = torch.optim.AdamW(bare_model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        generator = torch.Generator().manual_seed(args.seed)

        real_times, bare_times = [], []
        for epoch in range(args.epochs + 1):  # epoch 0 warms up allocator and kernels, untimed
            bare = bare_epoch(bare_model, bare_opt, fronts, backs, targets, config.batch_size, device, generator)
            if epoch == 0:
                real = real_warm_up
            else:
                real = train_one_epoch(real_model, loader, real_opt, device=device)["seconds"]
            if epoch:
                bare_times.append(bare)
                real_times.append(real)
            label = "warm-up" if epoch == 0 else f"epoch {epoch}"
            print(f"  {label}: bare {bare:.2f}s  real {real:.2f}s  ratio {real / bare:.3f}", flush=True)

    pairs = (len(samples) // config.batch_size) * config.batch_size
    real_s, bare_s = statistics.median(real_times), statistics.median(bare_times)
    ratio = sum(real_times) / sum(bare_times)  # over all timed epochs: steadier than a ratio of two medians
    bench_rss_gb = _peak_rss_gb()
    print()
    print(
        f"load average (1/5 min) {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f}  (other processes slow both loops)"
    )
    print(f"pairs per epoch        {pairs}")
    print(f"decode once (real)     {decode_seconds:.1f}s for {len(samples)} pairs ({2 * len(samples)} JPEGs)")
    print(f"bare loop              {bare_s:.2f} s/epoch (median)  {pairs / bare_s:.0f} pairs/s")
    print(f"real pipeline          {real_s:.2f} s/epoch (median)  {pairs / real_s:.0f} pairs/s")
    print(
        f"ratio real/bare        {ratio:.3f}  (target <= {TARGET_RATIO})  {'OK' if ratio <= TARGET_RATIO else 'MISSED'}"
    )
    verdict = "OK" if real_rss_gb < TARGET_RSS_GB else "MISSED"
    print(f"peak RSS, real         {real_rss_gb:.2f} GB  (target < {TARGET_RSS_GB} GB)  {verdict}")
    print(f"peak RSS, whole bench  {bench_rss_gb:.2f} GB  (with the bare loop's float copy and its model)")
    ok = ratio <= TARGET_RATIO and real_rss_gb < TARGET_RSS_GB
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    raise SystemExit(main())
