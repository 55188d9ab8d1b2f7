"""The tests-only renderer: deterministic, in the project's year span, and the date drawn where it says it is."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.generalisation import camera, renderer
from training.ml import years
from training.ml.config import seed_regression

SIZE = 256
ROOT = Path(__file__).resolve().parents[2]


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def _change_inside(a: Image.Image, b: Image.Image, box: tuple[float, float, float, float], margin: float) -> float:
    """Share of the absolute pixel change between a and b that lies inside box (grown by margin pixels)."""
    diff = np.abs(_pixels(a) - _pixels(b)).sum(2).astype(np.float64)
    x0, y0, x1, y1 = box
    inside = np.zeros_like(diff, dtype=bool)
    inside[max(0, int(y0 - margin)) : int(y1 + margin) + 1, max(0, int(x0 - margin)) : int(x1 + margin) + 1] = True
    return float(diff[inside].sum() / max(diff.sum(), 1e-9))


def test_years_span_the_range_training_reads():
    config = seed_regression()
    assert (renderer.YEAR_MIN, renderer.YEAR_MAX) == (config.year_min, config.year_max)


def test_same_seed_gives_identical_photos_and_year():
    a, b = renderer.render_pair(11, size=SIZE), renderer.render_pair(11, size=SIZE)
    assert a.year == b.year and a.layout == b.layout
    assert a.jpegs() == b.jpegs()


def test_pair_is_two_rgb_photos_of_the_size_with_a_year_in_range():
    pair = renderer.render_pair(3, size=SIZE)
    assert pair.front.mode == pair.back.mode == "RGB"
    assert pair.front.size == pair.back.size == (SIZE, SIZE)
    assert renderer.YEAR_MIN <= pair.year <= renderer.YEAR_MAX
    assert np.isfinite(_pixels(pair.front)).all() and _pixels(pair.front).std() > 5


@pytest.mark.parametrize("layout", renderer.LAYOUTS)
def test_another_year_changes_only_the_date_region_of_the_date_side(layout):
    """The same coin with another year differs where the date is drawn, and nowhere else: the date is really there."""
    a = renderer.render_pair(21, size=SIZE, year=1801, layout=layout)
    b = renderer.render_pair(21, size=SIZE, year=1964, layout=layout)
    sides_a, sides_b = (a.front, a.back), (b.front, b.back)
    other = 1 - a.date_side
    assert np.array_equal(_pixels(sides_a[other]), _pixels(sides_b[other]))
    changed = np.abs(_pixels(sides_a[a.date_side]) - _pixels(sides_b[a.date_side])).sum(2)
    assert (changed > 30).sum() > 40  # digits, not noise
    assert _change_inside(sides_a[a.date_side], sides_b[a.date_side], a.date_box, margin=4) > 0.9


def test_date_box_lies_on_the_coin():
    for seed in range(4):
        pair = renderer.render_pair(seed, size=SIZE)
        cx, cy, r = pair.discs[pair.date_side]
        x0, y0, x1, y1 = pair.date_box
        assert np.hypot((x0 + x1) / 2 - cx, (y0 + y1) / 2 - cy) < r
        assert 0 < x1 - x0 < 2 * r and 0 < y1 - y0 < 2 * r


def test_painted_over_covers_the_date_and_changes_nothing_else():
    clean = renderer.render_pair(5, size=SIZE)
    painted = renderer.render_pair(5, size=SIZE, painted_over=True)
    assert painted.painted_over and painted.year == clean.year
    side = clean.date_side
    other = 1 - side
    assert np.array_equal(_pixels((clean.front, clean.back)[other]), _pixels((painted.front, painted.back)[other]))
    before, after = (clean.front, clean.back)[side], (painted.front, painted.back)[side]
    x0, y0, x1, y1 = (int(v) for v in clean.date_box)
    assert np.abs(_pixels(before) - _pixels(after))[y0:y1, x0:x1].mean() > 20
    assert _change_inside(before, after, clean.date_box, margin=0.6 * (x1 - x0)) > 0.9


def test_iter_pairs_yields_jpegs_whose_ith_coin_does_not_depend_on_count():
    three = list(renderer.iter_pairs(3, seed=9, size=SIZE))
    two = list(renderer.iter_pairs(2, seed=9, size=SIZE))
    assert three[:2] == two
    for front, back, year, layout in three:
        assert layout in renderer.LAYOUTS
        assert Image.open(io.BytesIO(front)).format == Image.open(io.BytesIO(back)).format == "JPEG"
        assert renderer.YEAR_MIN <= year <= renderer.YEAR_MAX


def test_rejects_a_year_outside_the_range():
    with pytest.raises(ValueError, match="year"):
        renderer.render_pair(1, size=SIZE, year=1699)


def test_draws_the_years_of_the_one_year_range():
    # the renderer writes the range out (it imports nothing of the training side): it must be training.ml.years'
    assert (renderer.YEAR_MIN, renderer.YEAR_MAX) == (years.YEAR_MIN, years.YEAR_MAX)


def test_shares_no_code_with_the_training_generators():
    """The renderer and its camera import neither the training generators nor anything of the apps (only the
    standard library, numpy, Pillow and each other), and draw only with their own committed fonts (never Pillow's
    bundled font that training.ml.synthetic draws with)."""
    allowed = {
        "__future__",
        "io",
        "math",
        "collections",
        "dataclasses",
        "functools",
        "pathlib",
        "typing",
        "numpy",
        "PIL",
    }
    for module in (renderer, camera):
        source = Path(module.__file__).read_text(encoding="utf-8")
        imported = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
        assert {name.split(".")[0] for name in imported} - {"tests"} <= allowed, module.__name__
        assert {name for name in imported if name.startswith("tests")} <= {"tests.generalisation"}
        assert "load_default" not in source
    for name in renderer.FONTS:
        assert (renderer.FONT_DIR / name).is_file()
    assert {p.name for p in renderer.FONT_DIR.glob("LICENSE_*")} == {"LICENSE_STIX", "LICENSE_DEJAVU"}
