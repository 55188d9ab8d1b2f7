#!/usr/bin/env python3
"""Run a `pip install -r LOCK ...` and say what it does: "collecting 12/207: torch 2.14.1 (downloading 901.5 MB)".

`make venv` used to run pip with --quiet: about 10 minutes with no word on a fresh clone. pip's own output is long
(every package twice, a "Location ... is ignored" warning per index line on some machines) and goes silent for
minutes while it unpacks torch and the CUDA wheels. This wrapper counts the lock's pinned packages, prints one line per
package with its place in the count and the size pip downloads, drops the noise, says what pip is doing whenever it
has been silent for HEARTBEAT_SECONDS, and keeps pip's whole output in a log file whose tail it prints if pip fails.
pip's arguments pass through untouched (hash-checking mode included). Standard library only: it runs before the
virtualenv has anything installed.

    python3 scripts/pip_progress.py --log .venv/pip-install.log -- .venv/bin/python -m pip install --require-hashes -r requirements/dev.txt
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

HEARTBEAT_SECONDS = 20.0
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
COLLECTING = re.compile(r"^Collecting ([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?(?:==([^\s;(]+))?")
SATISFIED = re.compile(r"^Requirement already satisfied: ([A-Za-z0-9][A-Za-z0-9._-]*)")
PROCESSING = re.compile(r"^Processing (\S+\.(?:whl|tar\.gz|zip))")  # a wheel from a local folder or find-links
DOWNLOADING = re.compile(r"^\s*Downloading \S+ \(([^)]+)\)")
CACHED = re.compile(r"^\s*Using cached ")
INSTALLING = re.compile(r"^Installing collected packages: (.*)$")
NOISE = (
    re.compile(r"Location .* is ignored"),
    re.compile(r"^\s*[━\-=\s]*[\d.]+/[\d.]+ [kMG]?B"),  # a progress bar's redraw, should pip print one to a pipe
)


def lock_packages(paths: list[Path]) -> list[str]:
    """The pinned names of pip-compile lock files (`name==version \\` lines), in order, without repeats."""
    names: list[str] = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = PIN.match(line)
            if match and match.group(1).lower() not in names:
                names.append(match.group(1).lower())
    return names


def duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


class Reporter:
    """Turns pip's lines into progress lines (one method per line; the caller prints what it returns)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.seen: set[str] = set()
        self.current = "starting pip"
        self.phase_started = time.monotonic()

    def line(self, text: str) -> str | None:
        text = text.rstrip("\n")
        if not text.strip() or any(pattern.search(text) for pattern in NOISE):
            return None
        if match := COLLECTING.match(text) or SATISFIED.match(text):
            name = match.group(1).lower()
            self.seen.add(name)
            version = match.group(2) if match.re is COLLECTING and match.group(2) else ""
            verb = "collecting" if match.re is COLLECTING else "already installed"
            self.current = f"{verb} {name}"
            return f"[pip] {verb} {len(self.seen)}/{self.total or '?'}: {name} {version}".rstrip()
        if match := PROCESSING.match(text):
            path = Path(match.group(1))
            name, _, rest = path.name.partition("-")
            name = name.replace("_", "-").lower()
            self.seen.add(name)
            self.current = f"unpacking {name}"
            size = f" ({path.stat().st_size / 1e6:,.1f} MB)" if path.is_file() else ""
            return f"[pip] collecting {len(self.seen)}/{self.total or '?'}: {name} {rest.split('-')[0]}{size}"
        if match := DOWNLOADING.match(text):
            self.current = f"downloading {self.current.split()[-1]} ({match.group(1)})"
            return f"[pip]   downloading {match.group(1)}"
        if CACHED.match(text):
            return None  # pip's cache: nothing to wait for
        if match := INSTALLING.match(text):
            count = len([name for name in match.group(1).split(",") if name.strip()])
            self.current = f"installing {count} packages"
            self.phase_started = time.monotonic()
            return (
                f"[pip] installing {count} packages (unpacking and compiling; torch and its CUDA wheels take the "
                "longest) ..."
            )
        if text.startswith("Successfully installed"):
            count = len(text.split()) - 2
            return f"[pip] installed {count} packages in {duration(time.monotonic() - self.phase_started)}"
        if text.startswith(("ERROR", "WARNING")) or "error" in text.lower():
            return text  # pip's own words, when it has something to say
        return None  # pip's other chatter (the log file keeps it)

    def heartbeat(self, silent_for: float, started: float) -> str:
        return f"[pip]   ... still {self.current} ({duration(time.monotonic() - started)} so far)"


def run(command: list[str], *, locks: list[Path], log: Path) -> int:
    """Run `command`, report its progress on stdout, keep its full output in `log`; pip's exit status."""
    reporter = Reporter(len(lock_packages(locks)))
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    last_output = [time.monotonic()]
    done = threading.Event()

    def beat() -> None:
        while not done.wait(1.0):
            silent = time.monotonic() - last_output[0]
            if silent >= HEARTBEAT_SECONDS:
                print(reporter.heartbeat(silent, started), flush=True)
                last_output[0] = time.monotonic()

    if reporter.total:
        print(
            f"[pip] {reporter.total} packages in {', '.join(str(p) for p in locks)}; full output in {log}", flush=True
        )
    threading.Thread(target=beat, name="pip-heartbeat", daemon=True).start()
    with open(log, "w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, errors="replace"
        )
        assert process.stdout is not None
        for text in process.stdout:
            log_file.write(text)
            report = reporter.line(text)
            if report is not None:
                print(report, flush=True)
                last_output[0] = time.monotonic()
        status = process.wait()
    done.set()
    if status:
        tail = log.read_text(encoding="utf-8").splitlines()[-30:]
        kept = [line for line in tail if not any(pattern.search(line) for pattern in NOISE)]
        print(f"[pip] failed (exit {status}); the end of {log}:", *kept, sep="\n", file=sys.stderr, flush=True)
    else:
        print(f"[pip] done in {duration(time.monotonic() - started)}", flush=True)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", type=Path, required=True, help="where pip's whole output is kept")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the pip command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the pip command after --")
    locks = [Path(command[i + 1]) for i, arg in enumerate(command[:-1]) if arg in ("-r", "--requirement")]
    return run(command, locks=locks, log=args.log)


if __name__ == "__main__":
    sys.exit(main())
