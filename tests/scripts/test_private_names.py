"""scripts/private_names.py: no module of the four packages uses another module's ``_name``."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
spec = importlib.util.spec_from_file_location("private_names", ROOT / "scripts" / "private_names.py")
private_names = importlib.util.module_from_spec(spec)
sys.modules["private_names"] = private_names  # dataclasses look their module up there
spec.loader.exec_module(private_names)


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_finds_private_names_imported_or_reached_through_a_module(tmp_path):
    # given a package whose modules import and reach into each other's private names
    write(tmp_path, "app/__init__.py", "")
    write(tmp_path, "app/lease.py", "def _renew(): ...\ndef renew(): ...\n__version__ = '1'\n")
    user = write(
        tmp_path,
        "app/runs.py",
        """
        from .lease import _renew, renew, __version__
        from app import lease
        lease._renew()
        lease.renew()
        """,
    )

    # when the check reads the importing module
    uses = [use.text for use in private_names.private_uses(user, root=tmp_path)]

    # then both private uses are named, the public and dunder names are not
    assert uses == ["from app.lease import _renew", "lease._renew"]


def test_the_four_packages_use_no_private_name_across_modules():
    assert private_names.main([]) == 0
