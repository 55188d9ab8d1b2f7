"""`make venv`'s progress lines (scripts/pip_progress.py): what pip installs and how far, without its noise."""

from __future__ import annotations

import sys
import textwrap

from scripts import pip_progress
from scripts.pip_progress import Reporter

LOCK = textwrap.dedent(
    """\
    # via pip-compile
    idna==3.20 \\
        --hash=sha256:aa
        # via requests
    torch==2.14.1 \\
        --hash=sha256:bb
    six==1.17.0 \\
        --hash=sha256:cc
    """
)


def test_the_lock_counts_each_pinned_package_once(tmp_path):
    (tmp_path / "a.txt").write_text(LOCK)
    (tmp_path / "b.txt").write_text("six==1.17.0 \\\n    --hash=sha256:cc\n")

    assert pip_progress.lock_packages([tmp_path / "a.txt", tmp_path / "b.txt"]) == ["idna", "torch", "six"]


def test_each_package_gets_its_place_in_the_count_and_its_size_and_the_noise_goes():
    reporter = Reporter(total=3)
    lines = [
        "Looking in indexes: https://pypi.org/simple, file:///opt/pypi/simple",
        "WARNING: Location 'file:///opt/pypi-more/simple/idna/' is ignored: it is neither a file nor a directory.",
        "Collecting idna==3.20 (from -r requirements/dev.txt (line 1))",
        "  Using cached idna-3.20-py3-none-any.whl (64 kB)",
        "Collecting torch==2.14.1 (from -r requirements/dev.txt (line 5))",
        "  Downloading torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl (901.5 MB)",
        "Installing collected packages: idna, torch",
        "Successfully installed idna-3.20 torch-2.14.1",
    ]

    shown = [text for text in map(reporter.line, lines) if text is not None]

    assert shown[:3] == [
        "[pip] collecting 1/3: idna 3.20",
        "[pip] collecting 2/3: torch 2.14.1",
        "[pip]   downloading 901.5 MB",
    ]
    assert shown[3].startswith("[pip] installing 2 packages") and shown[4].startswith("[pip] installed 2 packages")
    assert not any("is ignored" in text or "Looking in" in text for text in shown)


def test_a_silent_pip_is_said_to_be_still_at_its_current_package():
    reporter = Reporter(total=3)
    reporter.line("Collecting torch==2.14.1 (from -r requirements/dev.txt (line 5))")
    reporter.line("  Downloading torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl (901.5 MB)")

    assert "still downloading torch (901.5 MB)" in reporter.heartbeat(25.0, 0.0)
    reporter.line("Installing collected packages: idna, torch")
    assert "still installing 2 packages" in reporter.heartbeat(25.0, 0.0)


def test_a_local_wheel_is_counted_with_its_file_size(tmp_path):
    wheel = tmp_path / "torch-2.14.1-cp311-cp311-linux_x86_64.whl"
    wheel.write_bytes(b"x" * 2_500_000)

    assert Reporter(total=180).line(f"Processing {wheel} (from -r lock (line 3))") == (
        "[pip] collecting 1/180: torch 2.14.1 (2.5 MB)"
    )


def test_pip_runs_with_its_arguments_untouched_and_a_failure_shows_the_log_tail(tmp_path, capsys):
    # given a stand-in for pip that echoes its arguments and fails like a hash mismatch
    lock = tmp_path / "lock.txt"
    lock.write_text(LOCK)
    fake_pip = (
        "import sys; print('args:', *sys.argv[1:]);"
        "print(\"WARNING: Location 'file:///x' is ignored: it is neither a file nor a directory.\");"
        "print('ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.'); sys.exit(1)"
    )
    log = tmp_path / "pip.log"

    status = pip_progress.main(
        ["--log", str(log), "--", sys.executable, "-c", fake_pip, "--require-hashes", "-r", str(lock)]
    )

    out = capsys.readouterr()
    assert status == 1
    assert f"args: --require-hashes -r {lock}" in log.read_text()
    assert "[pip] 3 packages" in out.out and "DO NOT MATCH THE HASHES" in out.out
    assert "failed (exit 1)" in out.err and "is ignored" not in out.out + out.err
