"""K-fold splits, labels.csv reading with per-line errors, and the decode-once pair dataset."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from training.ml.config import seed_regression
from training.ml.data import CoinPairDataset, CoinSample, kfold_indices, make_loader, read_labels_csv
from training.ml.model import denormalise_year


def jpeg(colour: tuple[int, int, int], size: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


# --- folds ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "folds"), [(10, 2), (101, 5), (7, 7)])
def test_kfold_validation_sets_cover_all_indices_disjointly(n, folds):
    splits = kfold_indices(n, folds, seed=3)
    assert len(splits) == folds
    validation = np.concatenate([val for _, val in splits])
    assert sorted(validation.tolist()) == list(range(n))
    for train, val in splits:
        assert set(train.tolist()).isdisjoint(val.tolist())
        assert len(train) + len(val) == n
        assert abs(len(val) - n / folds) < 1


def test_kfold_is_seeded():
    same = kfold_indices(50, 5, seed=1), kfold_indices(50, 5, seed=1)
    other = kfold_indices(50, 5, seed=2)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(*same, strict=True))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(same[0], other, strict=True))


def test_kfold_rejects_impossible_requests():
    with pytest.raises(ValueError):
        kfold_indices(10, 1, seed=0)
    with pytest.raises(ValueError):
        kfold_indices(3, 5, seed=0)


# --- labels.csv -------------------------------------------------------------------------------------------------------


def test_read_labels_csv_keeps_good_rows_and_reports_bad_ones_by_line(tmp_path):
    # given a folder with good photos, a text file posing as a photo, and a labels.csv with every kind of bad row
    (tmp_path / "a_front.jpg").write_bytes(jpeg((200, 100, 50)))
    (tmp_path / "a_back.jpg").write_bytes(jpeg((50, 100, 200)))
    (tmp_path / "note.jpg").write_bytes(b"this is not a photo")
    (tmp_path / "labels.csv").write_text(
        "front,back,year,notes\n"
        "a_front.jpg,a_back.jpg,1874,good one\n"  # line 2
        "missing.jpg,a_back.jpg,1900,\n"  # line 3
        "note.jpg,a_back.jpg,1900,\n"  # line 4
        "a_front.jpg,a_back.jpg,1650,\n"  # line 5
        "a_front.jpg,a_back.jpg,eighteen-seventy,\n"  # line 6
        "a_front.jpg,a_back.jpg,2026,\n"  # line 7
        "a_front.jpg,a_back.jpg, 1701 ,\n"  # line 8
    )
    # when it is read
    samples, errors = read_labels_csv(tmp_path)
    # then the good rows become samples and each bad row is named with its line and reason
    assert [s.year for s in samples] == [1874, 1701]
    assert samples[0].front == (tmp_path / "a_front.jpg").resolve() and samples[0].notes == "good one"
    reasons = {e.line: e.reason for e in errors}
    assert set(reasons) == {3, 4, 5, 6, 7}
    assert "front file 'missing.jpg' not found" in reasons[3]
    assert "not an image" in reasons[4]
    assert "out of range" in reasons[5] and "out of range" in reasons[7]
    assert "year 'eighteen-seventy' is not a number" in reasons[6]
    assert str(errors[0]).startswith("line 3:")


def test_read_labels_csv_refuses_paths_outside_the_folder(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (tmp_path / "secret.jpg").write_bytes(jpeg((1, 2, 3)))
    (folder / "labels.csv").write_text("front,back,year\n../secret.jpg,../secret.jpg,1900\n")
    samples, errors = read_labels_csv(folder)
    assert not samples and "outside the folder" in errors[0].reason


def test_read_labels_csv_without_the_columns_raises(tmp_path):
    (tmp_path / "labels.csv").write_text("image,year\nx.jpg,1900\n")
    with pytest.raises(ValueError, match="no column front, back"):
        read_labels_csv(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_labels_csv(tmp_path / "nowhere")


# --- dataset ----------------------------------------------------------------------------------------------------------


def make_samples(n: int = 6) -> list[CoinSample]:
    return [
        CoinSample(front=jpeg((20 * i, 100, 50)), back=jpeg((50, 20 * i, 100)), year=1700 + 50 * i, weight=1.0 + i)
        for i in range(n)
    ]


def test_dataset_items_are_normalised_tensors_with_normalised_year_and_weight():
    config = seed_regression(image_size=32)
    dataset = CoinPairDataset(make_samples(), config, train=False)
    front, back, target, weight = dataset[2]
    assert front.shape == back.shape == (3, 32, 32) and front.dtype == torch.float32
    assert float(denormalise_year(target, config)) == pytest.approx(1800)
    assert float(weight) == 3.0


def test_batched_access_equals_item_access_for_evaluation():
    dataset = CoinPairDataset(make_samples(), seed_regression(image_size=32), train=False)
    fronts, backs, targets, _ = dataset.batch([4, 1])
    assert torch.equal(fronts[0], dataset[4][0]) and torch.equal(backs[1], dataset[1][1])
    assert torch.equal(targets, torch.stack([dataset[4][2], dataset[1][2]]))


def test_photos_are_decoded_once_and_shared_by_the_train_and_eval_views(tmp_path):
    # given samples on disk
    samples = []
    for i in range(4):
        (tmp_path / f"{i}f.jpg").write_bytes(jpeg((60 * i, 0, 0)))
        (tmp_path / f"{i}b.jpg").write_bytes(jpeg((0, 60 * i, 0)))
        samples.append(CoinSample(front=tmp_path / f"{i}f.jpg", back=tmp_path / f"{i}b.jpg", year=1800 + i))
    dataset = CoinPairDataset(samples, seed_regression(image_size=32), train=True).preload()
    # when the files disappear after the preload
    for path in tmp_path.iterdir():
        path.unlink()
    # then both views still serve every coin from memory
    train_batch = dataset.batch([0, 1, 2, 3])
    eval_view = dataset.view(train=False)
    assert eval_view.cache is dataset.cache
    assert eval_view.batch([0, 1, 2, 3])[0].shape == train_batch[0].shape == (4, 3, 32, 32)


def test_loaders_yield_stacked_batches_with_our_collate_and_with_torchs_default():
    dataset = CoinPairDataset(make_samples(5), seed_regression(image_size=32), train=True)
    ours = next(iter(make_loader(dataset, batch_size=4, shuffle=True, seed=0)))
    default = next(iter(DataLoader(dataset, batch_size=4)))
    for batch in (ours, default):
        assert batch[0].shape == (4, 3, 32, 32) and batch[2].shape == (4,) and batch[3].shape == (4,)


def test_loader_order_is_seeded():
    dataset = CoinPairDataset(make_samples(6), seed_regression(image_size=32), train=False)

    def order(seed):
        return torch.cat([b[2] for b in make_loader(dataset, batch_size=2, shuffle=True, seed=seed)])

    assert torch.equal(order(5), order(5)) and not torch.equal(order(5), order(6))


def test_bad_photo_in_a_sample_names_the_sample():
    samples = [CoinSample(front=b"not a photo at all", back=jpeg((1, 2, 3)), year=1900, key="coin 7")]
    dataset = CoinPairDataset(samples, seed_regression(image_size=32), train=False)
    with pytest.raises(ValueError, match="coin 7 front"):
        dataset[0]
