"""Coin pairs as a PyTorch dataset, K-fold splits, and labels.csv read into samples whose photos decode.

Speed on a 2-core CPU: every photo is decoded ONCE (through images.load_image, the serving path) into a small uint8
tensor kept in memory (1,000 coins at 128 px take about 100 MB), and augmentation then runs batched on those small
tensors. Decoding JPEGs every epoch, or augmenting image by image, would cost more than the model itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from training.ml import images
from training.ml.config import TrainConfig

# Re-exported (`X as X`): callers and registered versions' model files name these as data.<Name>; they live in
# labels.py, which imports no torch, so the site's import command and services read labels without loading it.
from training.ml.labels import LABELS_FILENAME as LABELS_FILENAME
from training.ml.labels import SIDES as SIDES
from training.ml.labels import CoinSample as CoinSample
from training.ml.labels import LabelRow as LabelRow
from training.ml.labels import LabelRowError as LabelRowError
from training.ml.labels import LabelRowProblem as LabelRowProblem
from training.ml.labels import LabelsFileError as LabelsFileError
from training.ml.labels import labels_path as labels_path
from training.ml.labels import read_label_rows as read_label_rows
from training.ml.model import normalise_year
from training.ml.photo_limits import PhotoLimits


class DecodedImages:
    """uint8 (C, S, S) tensors of every sample's front and back, decoded on first use and then kept.

    Shared by the training and evaluation views of a dataset, and across folds, so K-fold training decodes each
    photo once in all.
    """

    def __init__(self, samples: Sequence[CoinSample], config: TrainConfig, limits: PhotoLimits | None = None) -> None:
        self.samples = list(samples)
        self.config = config
        self.limits = limits
        n, c, s = len(self.samples), config.in_channels, config.image_size
        self.fronts = torch.empty(n, c, s, s, dtype=torch.uint8)
        self.backs = torch.empty(n, c, s, s, dtype=torch.uint8)
        self.loaded = np.zeros(n, dtype=bool)

    def __len__(self) -> int:
        return len(self.samples)

    def _decode(self, source: Path | bytes, index: int, side: str) -> torch.Tensor:
        data = source if isinstance(source, (bytes, bytearray, memoryview)) else Path(source).read_bytes()
        try:
            return images.load_uint8(bytes(data), self.config, limits=self.limits)
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
        limits: PhotoLimits | None = None,
    ) -> None:
        self.config = config
        self.train = train
        self.cache = cache if cache is not None else DecodedImages(samples, config, limits)
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
    """Read ``folder/labels.csv`` (columns front, back, year and optional notes) into samples (read_label_rows).

    ``check_images`` also decodes every photo, so a file that is not an image is reported by line instead of
    failing the first epoch that meets it.
    """
    rows, errors = read_label_rows(folder, year_min=year_min, year_max=year_max)
    samples: list[CoinSample] = []
    for row in rows:
        try:
            if check_images:
                for side in SIDES:
                    row.read_photo(side, images.validate_image_bytes)
        except LabelRowProblem as problem:
            errors.append(LabelRowError(row.line, str(problem)))
            continue
        samples.append(
            CoinSample(front=row.front, back=row.back, year=row.year, key=f"line {row.line}", notes=row.notes)
        )
    return samples, sorted(errors, key=lambda error: error.line)
