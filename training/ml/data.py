"""Coin pairs as a PyTorch dataset, K-fold splits and the labels.csv reader.

Speed on a 2-core CPU: every photo is decoded ONCE (through images.load_image, the serving path) into a small uint8
tensor kept in memory (1,000 coins at 128 px take about 100 MB), and augmentation then runs batched on those small
tensors. Decoding JPEGs every epoch, or augmenting image by image, would cost more than the model itself.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from training.ml import images
from training.ml.config import TrainConfig
from training.ml.model import normalise_year

LABELS_FILENAME = "labels.csv"


@dataclass(frozen=True)
class CoinSample:
    """One labelled coin: two photos (file paths or bytes) and the minting year; ``weight`` scales its loss."""

    front: Path | bytes
    back: Path | bytes
    year: int
    weight: float = 1.0
    key: str = ""
    notes: str = ""


@dataclass(frozen=True)
class LabelRowError:
    """A labels.csv row that was skipped, with its line number (the header is line 1) and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class DecodedImages:
    """uint8 (C, S, S) tensors of every sample's front and back, decoded on first use and then kept.

    Shared by the training and evaluation views of a dataset, and across folds, so K-fold training decodes each
    photo once in all.
    """

    def __init__(self, samples: Sequence[CoinSample], config: TrainConfig) -> None:
        self.samples = list(samples)
        self.config = config
        n, c, s = len(self.samples), config.in_channels, config.image_size
        self.fronts = torch.empty(n, c, s, s, dtype=torch.uint8)
        self.backs = torch.empty(n, c, s, s, dtype=torch.uint8)
        self.loaded = np.zeros(n, dtype=bool)

    def __len__(self) -> int:
        return len(self.samples)

    def _decode(self, source: Path | bytes, index: int, side: str) -> torch.Tensor:
        data = source if isinstance(source, (bytes, bytearray, memoryview)) else Path(source).read_bytes()
        try:
            return images.load_uint8(bytes(data), self.config)
        except images.ImageError as error:
            sample = self.samples[index]
            name = sample.key or (str(source) if not isinstance(source, (bytes, bytearray)) else f"sample {index}")
            error.message = f"{name} {side}: {error.message}"
            raise

    def ensure(self, indices: Iterable[int]) -> None:
        """Decode the given samples if they are not decoded yet."""
        for index in indices:
            index = int(index)
            if not self.loaded[index]:
                sample = self.samples[index]
                self.fronts[index] = self._decode(sample.front, index, "front")
                self.backs[index] = self._decode(sample.back, index, "back")
                self.loaded[index] = True

    def preload(self, *, progress: bool = False) -> None:
        """Decode everything now (with a progress bar), so that epoch timings are only training."""
        todo = np.flatnonzero(~self.loaded)
        if progress and len(todo):
            from tqdm.auto import tqdm

            todo = tqdm(todo, desc="decoding photos", unit="coin", leave=False)
        self.ensure(todo)


class CoinPairDataset(Dataset):
    """(front, back, normalised year, weight) per coin; front/back are normalised float (C, S, S) tensors.

    train=True applies the augmentation of images.build_transforms(config, train=True); train=False is exactly the
    serving preprocessing. Batched access (``__getitems__``, used by DataLoader) augments a whole batch at once.
    """

    def __init__(
        self,
        samples: Sequence[CoinSample],
        config: TrainConfig,
        *,
        train: bool,
        cache: DecodedImages | None = None,
    ) -> None:
        self.config = config
        self.train = train
        self.cache = cache if cache is not None else DecodedImages(samples, config)
        if cache is not None and len(cache) != len(samples):
            raise ValueError("the cache does not belong to these samples")
        self.samples = self.cache.samples
        self.transform = images.build_transforms(config, train=train)
        self.years = np.array([s.year for s in self.samples], dtype=np.float64)
        self.targets = torch.as_tensor(normalise_year(self.years, config), dtype=torch.float32)
        self.weights = torch.tensor([float(s.weight) for s in self.samples], dtype=torch.float32)

    def view(self, *, train: bool) -> CoinPairDataset:
        """The same samples and decoded photos with the other preprocessing (train or eval)."""
        return CoinPairDataset(self.samples, self.config, train=train, cache=self.cache)

    def preload(self, *, progress: bool = False) -> CoinPairDataset:
        self.cache.preload(progress=progress)
        return self

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        front, back, target, weight = self.batch([index])
        return front[0], back[0], target[0], weight[0]

    def __getitems__(self, indices: Sequence[int]) -> PairBatch:
        return PairBatch(self.batch(indices))

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stacked (fronts, backs, targets, weights) for ``indices``, augmented as a batch when train=True."""
        self.cache.ensure(indices)
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        fronts = self.transform.batch(self.cache.fronts.index_select(0, index))
        backs = self.transform.batch(self.cache.backs.index_select(0, index))
        return fronts, backs, self.targets[index], self.weights[index]


class PairBatch(list):
    """What ``__getitems__`` returns: a list of per-sample tuples (so torch's default collate works) that also keeps
    the already stacked tensors, which collate_pairs hands on without copying them again."""

    def __init__(self, stacked: tuple[torch.Tensor, ...]) -> None:
        super().__init__(zip(*(t.unbind(0) for t in stacked), strict=True))
        self.stacked = stacked


def collate_pairs(batch: list) -> tuple[torch.Tensor, ...]:
    """Collate for CoinPairDataset: reuse a stacked PairBatch, else stack per-sample tuples."""
    if isinstance(batch, PairBatch):
        return batch.stacked
    return tuple(torch.stack(parts) for parts in zip(*batch, strict=True))


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """A single-process DataLoader with a seeded generator (reproducible order) and the no-copy collate.

    No worker processes: the photos are already decoded in memory, and on 2 cores a worker would only steal time
    from the model.
    """
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        drop_last=drop_last,
        collate_fn=collate_pairs,
        num_workers=0,
    )


def kfold_indices(n: int, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K (train, validation) index pairs: a seeded shuffle cut into K near-equal folds; each index validated once."""
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    if n < folds:
        raise ValueError(f"need at least {folds} samples for {folds} folds, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, folds)
    result = []
    for k in range(folds):
        val = np.sort(parts[k])
        train = np.sort(np.concatenate([parts[j] for j in range(folds) if j != k]))
        result.append((train, val))
    return result


def read_labels_csv(
    folder: str | Path,
    *,
    year_min: int = 1700,
    year_max: int = 2025,
    check_images: bool = True,
) -> tuple[list[CoinSample], list[LabelRowError]]:
    """Read ``folder/labels.csv`` (columns front, back, year and optional notes) into samples.

    Bad rows are skipped and reported with their line number and reason (missing file, not an image, bad year,
    year out of range), so one broken file does not stop an import. A missing labels.csv or missing columns raise
    (FileNotFoundError / ValueError): then nothing in the folder can be trusted.
    """
    folder = Path(folder)
    labels = folder / LABELS_FILENAME if folder.is_dir() else folder
    if labels.is_file():
        folder = labels.parent
    else:
        raise FileNotFoundError(f"no {LABELS_FILENAME} in {folder}")
    root = folder.resolve()
    samples: list[CoinSample] = []
    errors: list[LabelRowError] = []
    with labels.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip().lower() for c in (reader.fieldnames or [])]
        missing = [c for c in ("front", "back", "year") if c not in columns]
        if missing:
            raise ValueError(f"{labels} must have the columns front, back, year; missing: {', '.join(missing)}")
        reader.fieldnames = columns
        for row in reader:
            line = reader.line_num  # physical line of the row's end (a quoted cell may span lines)
            try:
                samples.append(_read_row(row, root, line, year_min, year_max, check_images))
            except _RowError as error:
                errors.append(LabelRowError(line, str(error)))
    return samples, errors


class _RowError(ValueError):
    pass


def _read_row(row: dict, root: Path, line: int, year_min: int, year_max: int, check_images: bool) -> CoinSample:
    if None in row:
        raise _RowError("more cells than columns")
    raw_year = (row.get("year") or "").strip()
    try:
        year = int(raw_year)
    except ValueError:
        try:
            as_float = float(raw_year)
        except ValueError:
            raise _RowError(f"bad year {raw_year!r} (not a whole number)") from None
        if not as_float.is_integer():
            raise _RowError(f"bad year {raw_year!r} (not a whole number)") from None
        year = int(as_float)
    if not year_min <= year <= year_max:
        raise _RowError(f"year {year} out of range {year_min}-{year_max}")
    paths = {}
    for side in ("front", "back"):
        name = (row.get(side) or "").strip()
        if not name:
            raise _RowError(f"no {side} file name")
        path = (root / name).resolve()
        if not path.is_relative_to(root):
            raise _RowError(f"{side} file {name!r} is outside the folder")
        if not path.is_file():
            raise _RowError(f"missing file: {side} {name!r}")
        if check_images:
            try:
                images.validate_image_bytes(path.read_bytes())
            except images.ImageError as error:
                raise _RowError(f"{side} {name!r}: {error.code.replace('_', ' ')} ({error})") from None
        paths[side] = path
    notes = (row.get("notes") or "").strip()
    return CoinSample(front=paths["front"], back=paths["back"], year=year, key=f"line {line}", notes=notes)
