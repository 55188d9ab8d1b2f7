"""The lock files agree with what requirements/*.in ask for: an edit to an .in file without `make lock` fails here.

`make venv` installs requirements/dev.txt and a deployment requirements/runtime.txt, both in pip's hash-checking
mode, so every pinned package needs its hashes, and the runtime lock must carry no test, lint or demo tool.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements"


def wanted(name: str) -> list[Requirement]:
    """The requirements an .in file names itself (its `-r` and `-c` lines are followed by the caller)."""
    out = []
    for line in (REQUIREMENTS / name).read_text(encoding="utf-8").splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith(("#", "-")):
            out.append(Requirement(line))
    return out


def locked(name: str) -> dict[str, tuple[str, list[str]]]:
    """A pip-compile lock as {canonical name: (version, [sha256 hashes])}."""
    text = (REQUIREMENTS / name).read_text(encoding="utf-8").replace("\\\n", " ")
    out = {}
    for line in text.splitlines():
        if not line or line[0] in "# -":
            continue
        pin, *options = line.split()
        package, version = pin.split("==")
        hashes = [option.removeprefix("--hash=sha256:") for option in options if option.startswith("--hash=sha256:")]
        out[canonicalize_name(package)] = (version, hashes)
    return out


@pytest.mark.parametrize(
    ("source", "lock"),
    [("runtime.in", "runtime.txt"), ("dev.in", "dev.txt"), ("runtime.in", "dev.txt")],  # dev.in has `-r runtime.in`
)
def test_every_requirement_of_an_in_file_is_pinned_with_hashes_in_its_lock(source, lock):
    pins = locked(lock)

    for requirement in wanted(source):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} ({source}) is not in {lock}: run `make lock`"
        version, hashes = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {name}=={version}, {source} asks for {requirement}: run `make lock`"
        )
        assert hashes, f"{name} has no --hash in {lock}"


@pytest.mark.parametrize("lock", ["runtime.txt", "dev.txt"])
def test_every_locked_package_has_a_sha256_hash(lock):
    pins = locked(lock)

    assert pins
    for name, (_, hashes) in pins.items():
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in hashes), name


def test_the_dev_lock_installs_the_runtime_lock_versions():
    runtime, dev = locked("runtime.txt"), locked("dev.txt")

    assert {name: version for name, (version, _) in runtime.items() if dev.get(name, ("",))[0] != version} == {}


def test_the_runtime_lock_carries_no_test_lint_or_demo_tool():
    runtime = locked("runtime.txt")
    tools = {canonicalize_name(requirement.name) for requirement in wanted("dev.in")}

    assert {"pytest", "pytest-django", "moto", "playwright", "schemathesis", "ruff", "honcho"} <= tools
    assert sorted(tools & set(runtime)) == []


def test_the_locks_are_compiled_for_python_3_11_by_make_lock():
    for lock in ("runtime.txt", "dev.txt"):
        header = (REQUIREMENTS / lock).read_text(encoding="utf-8")[:400]

        assert "pip-compile with Python 3.11" in header and "#    make lock" in header, lock
    assert "-c runtime.txt" in (REQUIREMENTS / "dev.in").read_text(encoding="utf-8")


def test_makefile_installs_from_the_locks_in_hash_checking_mode():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")

    assert re.search(r"^\$\(STAMP\): \$\(DEV_LOCK\) \$\(RUNTIME_LOCK\)$", makefile, re.M)
    # through scripts/pip_progress.py, which passes pip's arguments untouched (tests/scripts/test_pip_progress.py)
    assert "@$(PIP_PROGRESS) $(PY) -m pip install --require-hashes -r $(DEV_LOCK)" in makefile
    assert "@$(PIP_PROGRESS) $(PY) -m pip install --require-hashes -r $(RUNTIME_LOCK)" in makefile
    assert [line for line in makefile.splitlines() if "pip install" in line and "-r " in line and "LOCK)" not in line] == []
