"""The machine-readable last line of `make bench` and the ratios behind it (scripts/serving_bench/report.py)."""

from __future__ import annotations

import pytest

from scripts.serving_bench import report
from scripts.serving_bench.report import Measured


def measured(*, p50: float, rps: float, cpu: float) -> Measured:
    return Measured(p50_ms=p50, p95_ms=p50 * 1.2, rps=rps, cpu_ms=cpu)


def test_ratios_divide_b_by_a_by_c_and_by_the_ceiling():
    # given (a) p50s, a (b) and a (c) on 2 cores
    a = {"600px": 20.0, "12MP": 100.0}
    b = {"600px": measured(p50=25.0, rps=80.0, cpu=22.0), "12MP": measured(p50=110.0, rps=16.0, cpu=120.0)}
    c = {"600px": measured(p50=22.0, rps=64.0, cpu=20.0), "12MP": measured(p50=130.0, rps=10.0, cpu=150.0)}

    # when
    values = report.ratios(a_p50_ms=a, b=b, c=c, cores=2)

    # then: the ceiling at 12 MP is 2 cores / 100 ms = 20 req/s
    assert list(values) == list(report.RATIO_KEYS)
    assert values["p50_600_b_over_a"] == pytest.approx(1.25)
    assert values["p50_12mp_b_over_a"] == pytest.approx(1.10)
    assert values["thr_600_b_over_c"] == pytest.approx(1.25)
    assert values["thr_12mp_b_over_c"] == pytest.approx(1.6)
    assert values["thr_12mp_b_over_ceiling"] == pytest.approx(0.8)
    assert values["cpu_600_b_over_c"] == pytest.approx(1.1)


def test_postgresql_ratios_carry_the_pg_prefix():
    a = {"600px": 20.0, "12MP": 100.0}
    figures = {"600px": measured(p50=20.0, rps=50.0, cpu=10.0), "12MP": measured(p50=100.0, rps=10.0, cpu=100.0)}

    values = report.ratios(a_p50_ms=a, b=figures, c=figures, cores=2, prefix="pg_")

    assert list(values) == ["pg_" + key for key in report.RATIO_KEYS]


def test_ratio_line_has_the_issue_form_sqlite_keys_first_then_pg_keys():
    values = {key: 1.0 + i / 100 for i, key in enumerate(report.RATIO_KEYS)}
    values |= {"pg_" + key: 2.0 for key in report.RATIO_KEYS}

    line = report.ratio_line(dict(reversed(values.items())))  # whatever order the figures came in

    assert line.startswith(
        "bench: p50_600_b_over_a=1.00 p50_12mp_b_over_a=1.01 thr_600_b_over_c=1.02 thr_12mp_b_over_c=1.03 "
        "thr_12mp_b_over_ceiling=1.04 cpu_600_b_over_c=1.05 pg_p50_600_b_over_a=2.00 "
    )
    assert line.endswith("pg_cpu_600_b_over_c=2.00")


def test_ratio_line_parses_back_to_its_figures():
    values = {key: round(0.5 + i * 0.37, 2) for i, key in enumerate(report.RATIO_KEYS)}

    assert report.parse_ratio_line(report.ratio_line(values)) == values


def test_ratio_line_without_postgresql_has_only_the_sqlite_keys():
    values = {key: 1.0 for key in report.RATIO_KEYS}

    assert "pg_" not in report.ratio_line(values)


def test_ratio_line_refuses_a_key_outside_its_vocabulary():
    with pytest.raises(ValueError, match="thr_9000_b_over_c"):
        report.ratio_line({"thr_9000_b_over_c": 1.0})


@pytest.mark.parametrize("line", ["p50_600_b_over_a=1.25", "bench: p50_600_b_over_a", "bench: =1.0"])
def test_parse_refuses_what_is_not_a_bench_line(line):
    with pytest.raises(ValueError):
        report.parse_ratio_line(line)


def test_spread_gives_min_median_max_of_each_ratio_over_rounds():
    rounds = [{"thr_600_b_over_c": 1.1}, {"thr_600_b_over_c": 1.4}, {"thr_600_b_over_c": 1.2}]

    assert report.spread(rounds) == {"thr_600_b_over_c": (1.1, 1.2, 1.4)}


def test_target_verdicts_say_met_or_not_for_plain_and_pg_figures():
    lines = report.target_verdicts({"p50_600_b_over_a": 1.29, "pg_p50_600_b_over_a": 1.31})

    assert "met" in lines[0] and "NOT" not in lines[0]
    assert "pg_p50_600_b_over_a" in lines[1] and "NOT met" in lines[1]


def test_table_shows_the_ceiling_and_the_cores_each_server_kept_busy():
    figures = {"600px": measured(p50=25.0, rps=80.0, cpu=20.0), "12MP": measured(p50=110.0, rps=10.0, cpu=150.0)}

    lines = report.table(a={"600px": (20.0, 22.0), "12MP": (100.0, 105.0)}, rows=[("(b)", figures)], cores=2, clients=8)

    assert "ceiling 100.0" in lines[2]  # 600 px: 2 cores / 20 ms
    assert lines[-1].endswith(" 1.60")  # 80 req/s x 20 ms of CPU each
