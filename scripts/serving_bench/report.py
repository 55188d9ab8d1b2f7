"""What `make bench` prints: the table of one round, the ratios of issue 15's targets, and the machine-readable line.

The last line of a bench run is `bench: key=value ...` (ratio_line), so that a script (CI, a closing note) can read
the figures with parse_ratio_line without scraping the table. The keys are fixed: SQLite figures first, then the same
b-figures on PostgreSQL with a `pg_` prefix; c is always `mlflow models serve` with as many workers as the web server.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

KINDS = ("12MP", "600px")
KIND_KEYS = {"600px": "600", "12MP": "12mp"}  # how an input kind is spelled inside a ratio key
RATIO_KEYS = (
    "p50_600_b_over_a",
    "p50_12mp_b_over_a",
    "thr_600_b_over_c",
    "thr_12mp_b_over_c",
    "thr_12mp_b_over_ceiling",
    "cpu_600_b_over_c",
)
PG_PREFIX = "pg_"
LINE_PREFIX = "bench:"
# Issue 15's "must show" targets, as (key, bound, "<=" or ">="), checked against the SQLite and the pg_ figures.
TARGETS = (
    ("p50_600_b_over_a", 1.3, "<="),
    ("thr_600_b_over_c", 1.25, ">="),
    ("p50_12mp_b_over_a", 1.15, "<="),
    ("thr_12mp_b_over_c", 1.1, ">="),
    ("thr_12mp_b_over_ceiling", 0.8, ">="),
    ("cpu_600_b_over_c", 1.2, "<="),
)


@dataclass(frozen=True)
class Measured:
    """One server on one input kind: single-client latency, N-client throughput, server CPU per request.

    cpu_ms is the CPU time of the server's whole process tree (master and workers) over the throughput run divided
    by the requests it answered; db_cpu_ms is the part of it spent by PostgreSQL backends serving its connections
    (zero for SQLite, which runs inside the web workers and is already in their time)."""

    p50_ms: float
    p95_ms: float
    rps: float
    cpu_ms: float
    db_cpu_ms: float = 0.0


def percentiles(samples_ms: Sequence[float]) -> tuple[float, float]:
    """(p50, p95) of latency samples; p95 is the nearest-rank sample, so 20 samples already give a real one."""
    ordered = sorted(samples_ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def ceiling_rps(a_p50_ms: float, cores: int) -> float:
    """What a server doing nothing but (a) on every core could answer per second: no HTTP, JSON, storage or client."""
    return cores * 1000.0 / a_p50_ms


def ratios(
    *, a_p50_ms: Mapping[str, float], b: Mapping[str, Measured], c: Mapping[str, Measured], cores: int, prefix: str = ""
) -> dict[str, float]:
    """The six ratios of RATIO_KEYS for one (b) (its keys prefixed with `prefix`), against (a) and (c) as measured.

    `a_p50_ms`, `b` and `c` are keyed by input kind ("600px", "12MP")."""
    out = {}
    for kind in KINDS:
        key = KIND_KEYS[kind]
        out[f"p50_{key}_b_over_a"] = b[kind].p50_ms / a_p50_ms[kind]
        out[f"thr_{key}_b_over_c"] = b[kind].rps / c[kind].rps
    out["thr_12mp_b_over_ceiling"] = b["12MP"].rps / ceiling_rps(a_p50_ms["12MP"], cores)
    out["cpu_600_b_over_c"] = b["600px"].cpu_ms / c["600px"].cpu_ms
    return {prefix + key: out[key] for key in RATIO_KEYS}


def ratio_line(values: Mapping[str, float]) -> str:
    """`bench: p50_600_b_over_a=1.25 ... pg_p50_600_b_over_a=1.31 ...`: RATIO_KEYS, then their pg_ forms, each
    present in `values`, two decimals. Keys outside those are refused, so the line's vocabulary cannot drift."""
    order = [*RATIO_KEYS, *(PG_PREFIX + key for key in RATIO_KEYS)]
    unknown = set(values) - set(order)
    if unknown:
        raise ValueError(f"not a ratio of the bench line: {', '.join(sorted(unknown))}")
    return " ".join([LINE_PREFIX, *(f"{key}={values[key]:.2f}" for key in order if key in values)])


def parse_ratio_line(line: str) -> dict[str, float]:
    """The ratios of a `bench:` line (the inverse of ratio_line); ValueError naming what is wrong otherwise."""
    head, _, rest = line.strip().partition(" ")
    if head != LINE_PREFIX:
        raise ValueError(f"not a bench line (it starts with {head!r}, not {LINE_PREFIX!r})")
    values = {}
    for field in rest.split():
        key, sep, number = field.partition("=")
        if not sep or not key:
            raise ValueError(f"not key=value: {field!r}")
        values[key] = float(number)
    return values


def spread(rounds: Sequence[Mapping[str, float]]) -> dict[str, tuple[float, float, float]]:
    """(min, median, max) of each ratio over repeated rounds, for the keys every round has."""
    keys = [key for key in rounds[0] if all(key in r for r in rounds)]
    return {
        key: (min(r[key] for r in rounds), statistics.median(r[key] for r in rounds), max(r[key] for r in rounds))
        for key in keys
    }


def target_verdicts(values: Mapping[str, float]) -> list[str]:
    """One line per target of TARGETS present in `values` (plain and pg_): the figure, the bound, met or not."""
    lines = []
    for prefix in ("", PG_PREFIX):
        for key, bound, op in TARGETS:
            value = values.get(prefix + key)
            if value is None:
                continue
            met = value <= bound if op == "<=" else value >= bound
            lines.append(f"  {prefix + key:<28} {value:6.2f}  target {op} {bound:<5} {'met' if met else 'NOT met'}")
    return lines


def table(
    *,
    a: Mapping[str, tuple[float, float]],
    rows: Iterable[tuple[str, Mapping[str, Measured]]],
    cores: int,
    clients: int,
) -> list[str]:
    """The round's table: (a) with the ceiling, then each server's latency, throughput, CPU per request, and the
    cores its process tree kept busy during the throughput run (req/s x CPU s/req)."""
    lines = [
        f"{'server':<34} {'inputs':<6} {'1-client p50 / p95':>20} {f'{clients}-client req/s':>16} {'CPU ms/req':>22}"
        f" {'cores busy':>10}"
    ]
    for kind in KINDS:
        p50, p95 = a[kind]
        lines.append(
            f"{'(a) in-process decode + forward':<34} {kind:<6} {p50:>9.1f} / {p95:>6.1f} ms"
            f" {'ceiling ' + format(ceiling_rps(p50, cores), '.1f'):>16} {'(cores / a p50)':>22}"
        )
    for label, measured in rows:
        for kind in KINDS:
            m = measured[kind]
            cpu = f"{m.cpu_ms:.1f}" + (f" (db {m.db_cpu_ms:.1f})" if m.db_cpu_ms else "")
            busy = m.rps * m.cpu_ms / 1000  # below the cores: the server waited (I/O, locks), not computed
            lines.append(
                f"{label:<34} {kind:<6} {m.p50_ms:>9.1f} / {m.p95_ms:>6.1f} ms {m.rps:>16.1f} {cpu:>22} {busy:>10.2f}"
            )
    return lines
