"""The synthetic coin generator: deterministic, labelled, photo-like, and with visible era cues."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from training.ml import synthetic
from training.ml.synthetic import generate_coin, generate_coin_jpegs, iter_coins, write_dataset

SMALL = 96  # photo size used by these tests (fast); the default is 256


def _decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_generate_coin_returns_two_rgb_photos_of_the_requested_size():
    front, back = generate_coin(1850, 3, size=SMALL)
    for img in (front, back):
        assert isinstance(img, Image.Image)
        assert img.mode == "RGB"
        assert img.size == (SMALL, SMALL)
    assert front.tobytes() != back.tobytes()


def test_default_size_is_256():
    front, back = generate_coin(1990, 1)
    assert front.size == back.size == (256, 256)


def test_same_seed_gives_identical_images_and_bytes():
    a = generate_coin(1777, 42, size=SMALL)
    b = generate_coin(1777, 42, size=SMALL)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    assert generate_coin_jpegs(1777, 42, size=SMALL) == generate_coin_jpegs(1777, 42, size=SMALL)
    assert list(iter_coins(4, 9, size=SMALL)) == list(iter_coins(4, 9, size=SMALL))


def test_different_seeds_give_different_coins():
    assert generate_coin_jpegs(1900, 1, size=SMALL) != generate_coin_jpegs(1900, 2, size=SMALL)
    first = list(iter_coins(3, 1, size=SMALL))
    second = list(iter_coins(3, 2, size=SMALL))
    assert [c[:2] for c in first] != [c[:2] for c in second]
    # within one run, every coin is different too
    fronts = [front for front, _, _ in first]
    assert len(set(fronts)) == len(fronts)


def test_iter_coins_yields_jpeg_pairs_and_years_within_range():
    coins = list(iter_coins(12, 5, size=64))
    assert len(coins) == 12
    for front, back, year in coins:
        assert isinstance(year, int) and 1700 <= year <= 2025
        for data in (front, back):
            img = _decode(data)
            assert img.format == "JPEG"
            assert img.size == (64, 64)
    narrow = [year for _, _, year in iter_coins(10, 5, year_min=1900, year_max=1905, size=64)]
    assert all(1900 <= y <= 1905 for y in narrow)
    assert {y for _, _, y in iter_coins(2, 5, year_min=1815, year_max=1815, size=64)} == {1815}


def test_years_are_spread_over_the_whole_range():
    # year drawing is cheap (no rendering): look at the plan directly
    years = [synthetic.coin_plan(i, 11, 1700, 2025)[0] for i in range(2000)]
    assert min(years) < 1720 and max(years) > 2005
    assert abs(np.median(years) - 1862) < 25
    # and the plan is what iter_coins yields
    assert [y for _, _, y in iter_coins(3, 11, size=64)] == years[:3]


def test_the_first_coins_do_not_depend_on_count():
    assert list(iter_coins(2, 17, size=64)) == list(iter_coins(4, 17, size=64))[:2]


def test_write_dataset_writes_labels_and_readable_pairs(tmp_path):
    out = tmp_path / "coins"
    labels = write_dataset(out, count=5, seed=3, size=64)
    assert labels == out / "labels.csv"
    with labels.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["front", "back", "year"]
    assert len(rows) == 6
    expected = list(iter_coins(5, 3, size=64))
    for i, (row, (front, back, year)) in enumerate(zip(rows[1:], expected, strict=True), start=1):
        assert row == [f"coin_{i:05d}_front.jpg", f"coin_{i:05d}_back.jpg", str(year)]
        assert (out / row[0]).read_bytes() == front
        assert (out / row[1]).read_bytes() == back
        for name in row[:2]:
            with Image.open(out / name) as img:
                img.verify()
    assert sorted(p.name for p in out.iterdir()) == sorted(["labels.csv"] + [n for r in rows[1:] for n in r[:2]])


def test_write_dataset_with_progress_and_year_range(tmp_path):
    labels = write_dataset(tmp_path, count=3, seed=8, year_min=2000, year_max=2010, size=48, progress=True)
    with labels.open(newline="") as fh:
        years = [int(r["year"]) for r in csv.DictReader(fh)]
    assert len(years) == 3 and all(2000 <= y <= 2010 for y in years)


def test_cli_writes_a_dataset(tmp_path, capsys):
    assert synthetic.main([str(tmp_path / "ds"), "--count", "2", "--seed", "1", "--size", "48", "--quiet"]) == 0
    assert (tmp_path / "ds" / "labels.csv").read_text().count("\n") == 3
    assert "labels.csv" in capsys.readouterr().out


@pytest.mark.parametrize(
    "kwargs",
    [
        {"count": -1, "seed": 0},
        {"count": 2, "seed": 0, "year_min": 2000, "year_max": 1990},
        {"count": 2, "seed": 0, "size": 8},
        {"count": 2.5, "seed": 0},
    ],
)
def test_bad_arguments_are_rejected(kwargs, tmp_path):
    with pytest.raises(ValueError):
        list(iter_coins(**kwargs))
    with pytest.raises(ValueError):
        write_dataset(tmp_path, **kwargs)
    assert not (tmp_path / "labels.csv").exists()


def test_generate_coin_rejects_bad_year_and_size():
    with pytest.raises(ValueError):
        generate_coin(12345, 1, size=SMALL)
    with pytest.raises(ValueError):
        generate_coin(1900, 1, size=0)


def _centre_colour(img: Image.Image) -> np.ndarray:
    """Mean RGB of the central patch, which always lies on the coin (it fills >= 55% of the frame)."""
    a = np.asarray(img, dtype=np.float64)
    n = a.shape[0]
    c = a[int(n * 0.42) : int(n * 0.58), int(n * 0.42) : int(n * 0.58)]
    return c.reshape(-1, 3).mean(axis=0)


def test_era_cues_differ_between_1720_and_2010():
    """Old coins are red-brown copper, modern ones brass-yellow: green/red ratio differs clearly."""
    old = [_centre_colour(img) for seed in range(4) for img in generate_coin(1720, seed, size=SMALL)]
    new = [_centre_colour(img) for seed in range(4) for img in generate_coin(2010, seed, size=SMALL)]
    old_ratio = np.array([c[1] / c[0] for c in old])
    new_ratio = np.array([c[1] / c[0] for c in new])
    assert old_ratio.max() < new_ratio.min()
    assert new_ratio.mean() - old_ratio.mean() > 0.2


def test_design_parameters_vary_smoothly_with_the_year():
    """The continuous cues move monotonically / continuously across the years (no big jumps year to year)."""
    rng_years = range(1700, 2026)
    colours = np.array([synthetic.metal_colour(y) for y in rng_years])
    assert np.abs(np.diff(colours, axis=0)).max() < 0.03
    beads = [synthetic.CoinSpec(y, np.random.default_rng(0)).n_beads for y in (1700, 1800, 1900)]
    assert beads[0] < beads[1] < beads[2]
    wear = [np.mean([synthetic.CoinSpec(y, np.random.default_rng(s)).wear for s in range(20)]) for y in (1720, 1870, 2020)]
    assert wear[0] > wear[1] > wear[2]
