"""The date reader: year distribution from per-cell digit readings, its losses, and the location target."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from training.ml import images, negatives, synthetic
from training.ml.config import seed_regression
from training.ml.ensemble import CoinYearEnsemble, EnsemblePredictor, export_onnx, prediction_details
from training.ml.model import CoinDateModel, build_model
from training.ml.pretrain import coin_style, load_base_state
from training.ml.reader import (
    DateReaderNet,
    ReaderLossWeights,
    ReaderOutput,
    ReaderTargets,
    date_cell_index,
    reader_loss,
    year_digit_table,
    year_log_probs,
)
from training.ml.reader_calibration import highest_density_interval

CONFIG = seed_regression(head="reader", image_size=32, reader_width=16, year_min=1700, year_max=2025)


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same random weights (one torch thread comes from tests/conftest.py)."""
    torch.manual_seed(0)


def tiny_net() -> DateReaderNet:
    return DateReaderNet(in_channels=3, width=16, year_min=1700, year_max=2025).eval()


def test_year_digit_table_spells_every_year():
    table = year_digit_table(1700, 2025)
    assert table.shape == (326, 4)
    assert table[0].tolist() == [1, 7, 0, 0] and table[-1].tolist() == [2, 0, 2, 5]
    assert table[174].tolist() == [1, 8, 7, 4]


def test_forward_gives_cells_of_both_photos_and_a_normalised_year_distribution():
    net = tiny_net()
    front, back = torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        out = net(front, back)
        log_p = year_log_probs(out, net.year_digits)
    assert out.locate.shape == (3, 2 * 4 * 4) and out.digits.shape == (3, 32, 4, 10) and out.coin.shape == (3, 2)
    assert log_p.shape == (3, 326)
    assert torch.isfinite(log_p).all()
    assert torch.allclose(log_p.exp().sum(1), torch.ones(3), atol=1e-5)


def test_mixture_over_the_top_cells_equals_the_full_mixture_when_they_are_all_cells():
    torch.manual_seed(1)
    n, cells = 2, 6
    out = ReaderOutput(torch.randn(n, cells) * 3, torch.randn(n, cells, 4, 10) * 2, torch.zeros(n, 2))
    digits = year_digit_table(1700, 2025)
    got = year_log_probs(out, digits, top_cells=cells)
    # brute force: p(y) proportional to sum_c w_c prod_k p_ck(d_k(y))
    w = torch.softmax(out.locate, 1)
    p_digits = torch.softmax(out.digits, -1)
    brute = torch.zeros(n, len(digits))
    for y, ds in enumerate(digits):
        brute[:, y] = (w * torch.stack([p_digits[:, :, k, ds[k]] for k in range(4)], 0).prod(0)).sum(1)
    brute /= brute.sum(1, keepdim=True)
    assert torch.allclose(got.exp(), brute, atol=1e-6)


def test_a_confident_reading_at_the_date_cell_gives_that_year():
    n, cells = 1, 8
    locate = torch.full((n, cells), -10.0)
    locate[0, 5] = 10.0
    digits = torch.zeros(n, cells, 4, 10)
    for k, d in enumerate((1, 8, 7, 4)):
        digits[0, 5, k, d] = 12.0
    log_p = year_log_probs(ReaderOutput(locate, digits, torch.zeros(n, 2)), year_digit_table(1700, 2025))
    assert int(log_p.argmax()) + 1700 == 1874
    assert float(log_p.exp().max()) > 0.99


def test_date_cell_index_counts_front_cells_first():
    side, x, y = torch.tensor([0, 1]), torch.tensor([0.99, 0.1]), torch.tensor([0.0, 0.6])
    assert date_cell_index(side, x, y, 4).tolist() == [3, 16 + 2 * 4 + 0]


def test_reader_learns_to_read_a_batch_it_is_shown():
    # given four labelled pairs with known date cells / when trained a few dozen steps / then it reads them
    net = DateReaderNet(in_channels=3, width=16, year_min=1700, year_max=2025)
    torch.manual_seed(3)
    front, back = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    targets = ReaderTargets(
        year_index=torch.tensor([10, 150, 274, 300]),
        date_cell=torch.tensor([5, 20, 0, 31]),
        is_coin=torch.ones(4, 2),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        loss, _ = reader_loss(net(front, back), targets, net.year_digits, net.years, ReaderLossWeights())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    net.eval()
    with torch.inference_mode():
        predicted = year_log_probs(net(front, back), net.year_digits).argmax(1)
    assert losses[-1] < 0.2 * losses[0]
    assert predicted.tolist() == targets.year_index.tolist()


def test_non_coin_pairs_train_only_the_coin_score():
    net = tiny_net().train()
    out = net(torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32))
    targets = ReaderTargets(torch.tensor([-1, -1]), torch.tensor([-1, -1]), torch.zeros(2, 2))
    loss, parts = reader_loss(out, targets, net.year_digits, net.years)
    assert set(parts) == {"coin"} and torch.isfinite(loss)


def test_augment_moves_the_date_point_with_the_photo():
    # given a photo with one bright pixel / when warped with points / then the point lands on the bright pixel
    augment = images.Augment(
        rotation_degrees=30, scale=0.2, translate=0.1, color=0, blur_probability=0, geometric_probability=1.0
    )
    photo = torch.zeros(1, 1, 64, 64, dtype=torch.uint8)
    photo[0, 0, 38:41, 20:23] = 255
    point = torch.tensor([[(21.5 / 64) * 2 - 1, (39.5 / 64) * 2 - 1]])
    warped = augment(photo, torch.Generator().manual_seed(4), point)
    row, col = divmod(int(warped[0, 0].argmax()), 64)
    assert abs((point[0, 0] + 1) / 2 * 64 - (col + 0.5)) < 2.5
    assert abs((point[0, 1] + 1) / 2 * 64 - (row + 0.5)) < 2.5


@pytest.mark.parametrize("style", synthetic.STYLES)
def test_the_generator_says_where_it_drew_the_date(style):
    front, back, layout = synthetic.generate_coin_with_layout(1955, 12, size=128, style=style)
    assert layout is not None and layout.side in (0, 1)
    assert 0.05 < layout.x < 0.95 and 0.05 < layout.y < 0.95
    photo = np.asarray(Image.open(io.BytesIO((front, back)[layout.side])).convert("L"), dtype=np.float64)
    x, y = int(layout.x * 128), int(layout.y * 128)
    patch = photo[max(0, y - 6) : y + 6, max(0, x - 12) : x + 12]
    assert patch.std() > 8, "the date's strokes make the point's neighbourhood busy"
    assert synthetic.generate_coin_jpegs(1955, 12, size=128, style=style) == (front, back), "same bytes"


def test_the_northern_mint_looks_different():
    classic = synthetic.generate_coin_jpegs(1955, 12, size=96)
    northern = synthetic.generate_coin_jpegs(1955, 12, size=96, style="northern")
    assert classic != northern


def test_assorted_coins_put_their_date_in_many_places_and_pretraining_mixes_them_in():
    layouts = [synthetic.generate_coin_with_layout(1900 + i, i, size=96, style="assorted")[2] for i in range(12)]
    spots = {(round(lay.x, 1), round(lay.y, 1)) for lay in layouts}
    assert len(spots) >= 6, "the assorted style moves the date around the coin"
    styles = [coin_style(i, seed=1002, assorted_share=0.5) for i in range(400)]
    assert 0.4 < styles.count("assorted") / len(styles) < 0.6
    assert {coin_style(i, seed=1002, assorted_share=0.0) for i in range(50)} == {"classic"}


@pytest.mark.parametrize("kind", negatives.ALL_KINDS)
def test_every_kind_of_non_coin_photo_renders(kind):
    image = negatives.generate_negative(3, size=64, kinds=(kind,))
    assert image.size == (64, 64) and image.mode == "RGB"
    assert np.asarray(image).std() > 1


def reader_ensemble(calibration=None) -> CoinYearEnsemble:
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(build_model(CONFIG).eval())
    return CoinYearEnsemble(models, CONFIG, 0.0, calibration=calibration or {"temperature": 1.0})


def test_reader_ensemble_answers_year_interval_scores_and_a_distribution():
    ensemble = reader_ensemble()
    front, back = torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        out = ensemble(front, back).numpy().astype(np.float64)
    assert out.shape == (3, 5 + 326)
    p = out[:, 5:]
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-4)
    assert (out[:, 1] <= out[:, 0]).all() and (out[:, 0] <= out[:, 2]).all()
    assert np.array_equal(out[:, 0], p.argmax(1) + 1700)
    low, high = highest_density_interval(p, CONFIG.interval_level, 1700)
    np.testing.assert_array_equal(out[:, 1], low)
    np.testing.assert_array_equal(out[:, 2], high)
    inside = (np.arange(326)[None] + 1700 >= low[:, None]) & (np.arange(326)[None] + 1700 <= high[:, None])
    assert ((p * inside).sum(1) >= CONFIG.interval_level - 1e-4).all()
    assert ((out[:, 3] >= 0) & (out[:, 3] <= 1)).all()


def test_reader_ensemble_onnx_export_matches_torch(tmp_path):
    ensemble = reader_ensemble()
    path = export_onnx(ensemble, tmp_path / "reader.onnx")
    front, back = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        expected = ensemble(front, back).numpy()
    got = EnsemblePredictor.from_onnx(path, CONFIG, threads=1).predict(front, back)
    np.testing.assert_array_equal(got[:, :3], expected[:, :3])
    np.testing.assert_allclose(got[:, 3:], expected[:, 3:], atol=1e-4)


def test_details_reject_a_non_coin_and_an_unreadable_date_and_rank_alternatives():
    p = np.zeros(326)
    p[174], p[179], p[171] = 0.8, 0.15, 0.05
    row = np.concatenate([[1874, 1874, 1874, 0.97, 0.8], p])
    calibration = {"coin_threshold": 0.4, "read_threshold": 0.15}
    details = prediction_details(row, CONFIG, calibration)
    assert details["year"] == 1874 and details["level"] == CONFIG.interval_level
    assert [a["year"] for a in details["alternatives"]] == [1874, 1879, 1871]
    assert prediction_details(np.concatenate([[1874, 1874, 1874, 0.2, 0.8], p]), CONFIG, calibration)["rejected"] == (
        "not_a_coin"
    )
    unreadable = prediction_details(np.concatenate([[1874, 1800, 1950, 0.9, 0.05], p]), CONFIG, calibration)
    assert unreadable["rejected"] == "unreadable" and "Retake" in unreadable["message"]


def test_regression_rows_get_year_and_interval_only():
    details = prediction_details(np.array([1874.4, 1860.2, 1890.7]), seed_regression(), {})
    assert details == {"year": 1874, "low": 1860, "high": 1891, "level": 0.8}


def test_fine_tuning_loss_from_year_labels_alone_is_finite_and_has_gradients():
    model = CoinDateModel(CONFIG).train()
    target = torch.tensor([0.1, -0.5])
    loss = model.training_loss(torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32), target, torch.ones(2))
    loss.backward()
    assert math.isfinite(float(loss.detach()))
    assert model.reader.trunk.body[0][0].weight.grad is not None
    assert all(p.grad is None for p in model.reader.coin.parameters()), "the coin head is pretrained, then frozen"


def test_reader_from_the_base_model_starts_from_its_weights():
    config = seed_regression(head="reader", init_from="base", image_size=32)
    model = build_model(config)

    state, _ = load_base_state()
    key = "trunk.body.0.0.weight"
    assert torch.equal(model.reader.state_dict()[key], state[key])
