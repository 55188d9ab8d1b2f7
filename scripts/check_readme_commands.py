#!/usr/bin/env python3
"""Run the README's commands in a fresh copy of the project, as a new user would type them.

Issue 21 found `python manage.py drf_create_token`, named in the README, ending in a 47-line traceback outside make.
This script reads every command the README names (in code blocks and in `code spans`), copies the project as a fresh
clone has it (tracked and new unignored files; no var/, the virtualenv linked in), and runs there:

- `make help`, and checks that every `make TARGET` the README names is one of the targets it lists;
- every other `make ...` as a dry run (`make -n ...`): the target exists and its recipe expands;
- the `manage.py` commands that are safe on a fresh database exactly as written (placeholders such as `<username>`
  filled in: after `migrate` and the demo users), and the others (training, pretraining, imports) with `--help`;
- `celery -A coinsite ...` with `--help`.

Commands that need a running server or a model (`curl`, `mlflow models serve`) or install software are listed as not
run, with the reason. Exit status 1 when any command fails.

    .venv/bin/python scripts/check_readme_commands.py [--readme README.md] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as written: quick, and harmless on a fresh database.
MANAGE_AS_WRITTEN = {"check", "drf_create_token", "sweep", "wait_for_mlflow", "migrate", "showmigrations"}
PLACEHOLDERS = {"<username>": "collector", "<50 random chars>": secrets.token_urlsafe(50)}
CODE_SPAN = re.compile(r"`([^`]+)`")
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
COMMAND_START = re.compile(
    r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(make|celery|curl|mlflow|python3?[.\d]*|\S*manage\.py|\S*/bin/\S+|pip)\b"
)
NOT_RUN = {
    "curl": "needs a running server and a token",
    "mlflow": "needs a registered model",
    "python3.11": "installs a virtualenv",
    "pip": "installs packages",
}


@dataclass(frozen=True)
class Check:
    """One README command and how it is checked."""

    written: str  # as the README has it
    argv: tuple[str, ...] = ()  # what runs (in the copy); empty: not run
    env: tuple[tuple[str, str], ...] = ()
    why_not: str = ""


def readme_commands(text: str) -> list[str]:
    """Commands named in the README: code-block lines that start with a command (comments dropped, continuations
    joined; diagrams and output skipped) and code spans that start with `make ` or hold `manage.py `; in a table cell that starts with `manage.py X`, the bare names after it
    (`retrain`, `evaluate`) are manage.py commands too."""
    commands: list[str] = []
    in_block, pending = False, ""
    for line in text.splitlines():
        if line.startswith("```"):
            in_block, pending = not in_block, ""
            continue
        if in_block:
            line = re.sub(r"\s+#.*$", "", line).strip() if not line.lstrip().startswith("#") else ""
            if not pending and not COMMAND_START.match(line):
                continue  # a diagram, JSON, program output
            pending = f"{pending} {line.rstrip(chr(92)).strip()}".strip()
            if not line.endswith("\\"):
                commands.append(pending)
                pending = ""
            continue
        for cell in line.split(" | ") if line.startswith("|") else [line]:
            spans = CODE_SPAN.findall(cell)
            for index, span in enumerate(spans):
                if span.startswith("make ") or "manage.py " in span:
                    commands.append(span)
                elif index and spans[0].startswith("manage.py ") and re.fullmatch(r"[a-z_]+", span):
                    commands.append(f"manage.py {span}")
    seen: set[str] = set()
    return [c for c in commands if not (c in seen or seen.add(c))]


def plan(command: str, python: str) -> Check:
    """How `command` is checked in the copy."""
    for placeholder, value in PLACEHOLDERS.items():
        command = command.replace(placeholder, value)
    words = shlex.split(command)
    env = []
    while words and ENV_ASSIGNMENT.match(words[0]):
        key, _, value = words.pop(0).partition("=")
        env.append((key, value))
    if not words:
        return Check(command, why_not="no command")
    tool = Path(words[0]).name
    if tool == "make":
        if words[1:] == ["help"]:
            return Check(command, ("make", "help"), tuple(env))
        return Check(command, ("make", "-n", *words[1:]), tuple(env))
    if "manage.py" in words:
        rest = words[words.index("manage.py") + 1 :]
        if not rest or "<" in command:
            return Check(command, why_not="incomplete")
        if rest[0] in MANAGE_AS_WRITTEN:
            return Check(command, (python, "manage.py", *rest), tuple(env))
        return Check(command, (python, "manage.py", rest[0], "--help"), tuple(env))
    if tool == "celery":
        return Check(command, (str(Path(python).parent / "celery"), *words[1:4], "--help"), tuple(env))
    return Check(command, why_not=NOT_RUN.get(tool, "not a command this script runs"))


def fresh_copy(destination: Path) -> None:
    """The project as a fresh clone has it: tracked files plus new ones git does not ignore; the virtualenv linked."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (entry.decode() for entry in listed)):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (destination / ".venv").symlink_to(Path(sys.prefix))


def clean_env() -> dict[str, str]:
    """A new user's shell: none of this session's deployment or test variables."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "CELERY_", "MLFLOW_", "COINSITE_", "CACHE_URL", "AWS_"))
        and key not in {"PYTEST_VERSION", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"}
    }


HELP_BATCH = """
import runpy, sys, traceback
for command in sys.argv[1:]:
    sys.argv = ["manage.py", command, "--help"]
    code = 0
    try:
        runpy.run_path("manage.py", run_name="__main__")
    except SystemExit as stop:
        code = stop.code or 0
    except BaseException:
        traceback.print_exc()
        code = 1
    print(f"@@@ {command} {code}", flush=True)
"""


def help_batch(commands: list[str], python: str, cwd: Path, env: dict[str, str]) -> dict[str, tuple[bool, str]]:
    """`manage.py COMMAND --help` for each command, through manage.py itself but in one process: Django and torch
    load once (each start took 30-40 s on the loaded 2-core machine). {command: (ok, its output)}."""
    done = subprocess.run(
        [python, "-c", HELP_BATCH, *commands],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # a traceback lands between its command's markers
        text=True,
        timeout=600,
    )
    results, chunk = {}, []
    for line in done.stdout.splitlines():
        if match := re.fullmatch(r"@@@ (\S+) (\S+)", line):
            output = "\n".join(chunk)
            results[match.group(1)] = (match.group(2) == "0" and "Traceback (most recent" not in output, output)
            chunk = []
        else:
            chunk.append(line)
    return results


def run(check: Check, cwd: Path, env: dict[str, str]) -> tuple[bool, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        list(check.argv), cwd=cwd, env={**env, **dict(check.env)}, capture_output=True, text=True, timeout=600
    )
    output = done.stdout + done.stderr
    ok = done.returncode == 0 and "Traceback (most recent call last)" not in output
    return ok, output, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--keep", action="store_true", help="keep the copy (its path is printed)")
    args = parser.parse_args(argv)

    # the README and the pages it links in docs/: a command moved to docs/ is still one a newcomer types
    pages = [args.readme, *sorted((args.readme.parent / "docs").glob("*.md"))]
    commands = readme_commands("\n".join(page.read_text(encoding="utf-8") for page in pages))
    folder = Path(tempfile.mkdtemp(prefix="readme-commands-"))
    failures = 0
    try:
        fresh_copy(folder)
        env = clean_env()
        python = str(folder / ".venv" / "bin" / "python")
        # What a new user has after `make run`'s first steps: the database and the demo users (no coins, no model).
        for setup in (("migrate", "--noinput", "-v", "0"), ("bootstrap_demo", "--coins", "0", "--no-train")):
            ok, output, _ = run(Check("setup", (python, "manage.py", *setup)), folder, env)
            if not ok:
                print(f"FAIL setup manage.py {' '.join(setup)}\n{output}")
                return 1
        listed = ""
        checks, argvs = [], set()
        for check in (plan(command, python) for command in commands):
            if not check.argv or check.argv not in argvs:  # the README's four celery lines are one --help
                checks.append(check)
                argvs.add(check.argv)
        for check in checks:
            if not check.argv:
                print(f"skip  {check.written}  ({check.why_not})")
                continue
            if check.argv[1:2] == ("manage.py",) and check.argv[-1:] == ("--help",):
                continue  # below, in one process
            ok, output, seconds = run(check, folder, env)
            if check.argv == ("make", "help"):
                listed = output
            print(f"{'ok  ' if ok else 'FAIL'}  {check.written}  ({' '.join(check.argv[1:])}, {seconds:.1f} s)")
            if not ok:
                failures += 1
                print("      " + "\n      ".join(output.strip().splitlines()[-15:]))
        for check in checks:
            target = check.argv[2] if check.argv[:2] == ("make", "-n") and len(check.argv) > 2 else None
            if target and listed and f"make {target} " not in listed:
                failures += 1
                print(f"FAIL  {check.written}: `make help` does not list {target!r}")
        helps = [check for check in checks if check.argv[1:2] == ("manage.py",) and check.argv[-1:] == ("--help",)]
        started = time.monotonic()
        answers = help_batch([check.argv[2] for check in helps], python, folder, env)
        seconds = time.monotonic() - started
        for check in helps:
            ok, output = answers.get(check.argv[2], (False, "no answer"))
            print(
                f"{'ok  ' if ok else 'FAIL'}  {check.written}  (manage.py {check.argv[2]} --help; {seconds:.1f} s for all)"
            )
            if not ok:
                failures += 1
                print("      " + "\n      ".join(output.strip().splitlines()[-15:]))
        ran = sum(1 for check in checks if check.argv)
        print(f"readme: {ran - failures} passed, {failures} failed, {len(checks) - ran} skipped")
    finally:
        if args.keep:
            print(f"copy kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
