"""measure_reader's sets of coins that no generator of training drew: the tests-only renderer and phone photos."""

from __future__ import annotations

import io
import re
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.generalisation import phone, renderer

pytestmark = pytest.mark.django_db

ROW = re.compile(
    r"^\| (?P<label>[^|]+?) \| (?P<n>\d+) \| (?P<exact>[\d.]+)% \| (?P<not_coin>[\d.]+)% \| "
    r"(?P<unreadable>[\d.]+)% \| (?P<wrong>[\d.]+)% \| (?P<coverage>[\d.]+|nan)% "
)


def _rows(output: str) -> dict[str, dict[str, str]]:
    return {m["label"].strip(): m.groupdict() for line in output.splitlines() if (m := ROW.match(line))}


@pytest.mark.slow
def test_renderer_and_phone_sets_are_reported_per_layout_and_per_degradation(production_model):
    n_renderer, n_phone = 4, len(phone.KINDS)
    out = io.StringIO()
    call_command(
        "measure_reader",
        "--count",
        "0",
        "--negatives",
        "0",
        "--renderer",
        str(n_renderer),
        "--phone",
        str(n_phone),
        stdout=out,
        stderr=io.StringIO(),
    )
    rows = _rows(out.getvalue())
    assert rows["coins of the tests-only renderer"]["n"] == str(n_renderer)
    assert sum(int(r["n"]) for label, r in rows.items() if label.startswith("date ")) == n_renderer
    assert {label for label in rows if label.startswith("date ")} <= {f"date {name}" for name in renderer.LAYOUTS}
    assert rows["demo coins photographed as phones do (readable kinds)"]["n"] == str(n_phone - 1)
    for kind in phone.KINDS:
        label = f"{kind} (truth: unreadable)" if kind in phone.UNREADABLE_KINDS else kind
        assert rows[label]["n"] == "1"
    for row in rows.values():
        assert 0 <= float(row["exact"]) <= 100 and 0 <= float(row["wrong"]) <= 100
    assert "made and read in renderer" in out.getvalue()


def test_without_tests_folder_the_command_says_so_before_loading_a_model(monkeypatch, no_model):
    monkeypatch.setitem(sys.modules, "tests.generalisation", None)  # as in a deployment, which ships without tests/
    with pytest.raises(CommandError, match="deployment ships without tests/"):
        call_command("measure_reader", "--count", "0", "--renderer", "1", stdout=io.StringIO())
