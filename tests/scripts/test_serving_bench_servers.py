"""How the bench finds the PostgreSQL backends whose CPU it counts (scripts/serving_bench/servers.py)."""

from __future__ import annotations

import os

import pytest

from scripts.serving_bench import servers


@pytest.mark.parametrize(
    "title",
    [
        "postgres: 15/main: postgres coinsite_bench_42 127.0.0.1(43264) idle",
        "postgres: postgres coinsite_bench_42 127.0.0.1(43264) INSERT",
    ],
)
def test_a_backend_of_the_bench_database_is_counted(title):
    assert servers.is_backend_of(title, "coinsite_bench_42")


@pytest.mark.parametrize(
    "title",
    [
        "postgres: 15/main: postgres test_coinsite 127.0.0.1(44340) idle",
        "postgres: 15/main: walwriter ",
        "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main",
        "python coinsite_bench_42",
        "",
    ],
)
def test_other_processes_are_not(title):
    assert not servers.is_backend_of(title, "coinsite_bench_42")


def test_the_cpu_of_this_process_tree_is_read_from_proc():
    # given this process, which has run for a while: its tree includes it, and its CPU time is positive
    assert os.getpid() in servers.tree_pids(os.getpid())
    assert servers.cpu_seconds([os.getpid()]) > 0


def test_backend_cpu_counts_each_backend_from_its_own_first_reading():
    # a backend that appeared in between counts from zero; one that left counts nothing (not minus its time)
    assert servers.database_cpu_between({1: 2.0, 2: 5.0}, {1: 2.5, 3: 0.25}) == pytest.approx(0.75)
