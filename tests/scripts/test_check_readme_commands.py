"""Every README command runs as written from a fresh copy (scripts/check_readme_commands.py)."""

from __future__ import annotations

import textwrap

import pytest

from scripts import check_readme_commands as readme
from scripts.check_readme_commands import plan, readme_commands

SAMPLE = textwrap.dedent(
    """\
    ```bash
    make run     # serves http://127.0.0.1:8000
    curl -H "Authorization: Token <token>" \\
         http://127.0.0.1:8000/api/predict
    # {"predictions":[1874]}
    ```

    ```
    training.ml   the Django-free ML library (it's a diagram)
    ```

    A token comes from `manage.py drf_create_token <username>`; `make help` lists targets; `var/` is not a command.

    | you look at | the code |
    | --- | --- |
    | `manage.py train`, `retrain`, `evaluate` | `training/management/commands/` |
    """
)


def test_commands_come_from_code_blocks_and_code_spans_not_from_diagrams_or_output():
    assert readme_commands(SAMPLE) == [
        "make run",
        'curl -H "Authorization: Token <token>" http://127.0.0.1:8000/api/predict',
        "manage.py drf_create_token <username>",
        "make help",
        "manage.py train",
        "manage.py retrain",
        "manage.py evaluate",
    ]


@pytest.mark.parametrize(
    ("written", "argv"),
    [
        ("make help", ("make", "help")),
        ('make bench BENCH_ARGS="--repeat 3"', ("make", "-n", "bench", "BENCH_ARGS=--repeat 3")),
        ("manage.py drf_create_token <username>", ("py", "manage.py", "drf_create_token", "collector")),
        ("manage.py sweep", ("py", "manage.py", "sweep")),
        ("manage.py pretrain", ("py", "manage.py", "pretrain", "--help")),
        (
            "CUDA_VISIBLE_DEVICES=0 celery -A coinsite worker -Q training",
            ("celery", "-A", "coinsite", "worker", "--help"),
        ),
        ("curl http://127.0.0.1:8000/api/predict", ()),
    ],
)
def test_each_command_is_run_as_written_when_safe_else_with_help_or_not_at_all(written, argv):
    assert plan(written, "py").argv == argv


@pytest.mark.slow
def test_every_readme_command_runs_in_a_fresh_copy(capsys):
    status = readme.main([])

    out = capsys.readouterr().out
    assert status == 0, out
    assert "ok    make help" in out and "ok    manage.py drf_create_token collector" in out
    assert "FAIL" not in out
