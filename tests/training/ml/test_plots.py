"""The monitoring page's weekly figures render from plain numbers, with gaps, bands and empty input."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta

from training.ml.plots import ServingBand, WeeklyPanel, series_colors, weekly_figure


def png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


def test_weekly_figure_draws_gaps_references_guides_and_serving_bands():
    weeks = [date(2026, 11, 2) + timedelta(weeks=i) for i in range(4)]
    panels = [
        WeeklyPanel(
            "MAE", "years", {"v1": [3.0, None, 2.0, None], "v2": [None, None, None, 1.0]}, references={"v1": 2.5}
        ),
        WeeklyPanel("Exact", "share", {"v1": [0.25, None, 0.5, None]}, percent=True, guides=[(50, "half")]),
    ]
    serving = [
        ServingBand("v1", datetime(2026, 10, 1), datetime(2026, 11, 20)),
        ServingBand("v2", datetime(2026, 11, 20), None),
    ]
    fig = weekly_figure(weeks, panels, serving=serving, colors=series_colors(["v1", "v2"]), title="t")
    left, right = fig.axes[0].get_xlim()
    assert len(fig.axes) == 2 and right > left
    assert png_bytes(fig).startswith(b"\x89PNG")


def test_weekly_figure_without_any_week_or_value_says_so():
    fig = weekly_figure([], [WeeklyPanel("MAE", "years", {})])
    assert any(text.get_text() == "no data yet" for text in fig.axes[0].texts)
    assert png_bytes(fig).startswith(b"\x89PNG")


def test_series_colours_are_stable_and_distinct():
    colors = series_colors(["v1", "v2", "v1", "v3"])
    assert list(colors) == ["v1", "v2", "v3"] and len(set(colors.values())) == 3
