"""make_demo_coins and import_coins: labelled coins from the generator or a folder, deterministic and never twice."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from predictions.models import Coin
from tests.factories import jpeg_bytes

pytestmark = pytest.mark.django_db


def run(command: str, *args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_labels(folder: Path) -> list[dict[str, str]]:
    with (folder / "labels.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


# --- make_demo_coins ---------------------------------------------------------------------------------------------------


def test_make_demo_coins_writes_photos_and_labels_to_a_folder(tmp_path):
    out, _ = run("make_demo_coins", "--count", "6", "--seed", "3", "--out", str(tmp_path / "demo"))

    rows = read_labels(tmp_path / "demo")
    assert len(rows) == 6 and "labels.csv" in out
    for row in rows:
        assert (tmp_path / "demo" / row["front"]).read_bytes()[:2] == b"\xff\xd8"  # JPEG
        assert (tmp_path / "demo" / row["back"]).is_file()
        assert 1700 <= int(row["year"]) <= 2025
    assert not Coin.objects.exists()


def test_make_demo_coins_is_deterministic_by_seed(tmp_path):
    run("make_demo_coins", "--count", "6", "--seed", "3", "--out", str(tmp_path / "a"))
    run("make_demo_coins", "--count", "6", "--seed", "3", "--out", str(tmp_path / "b"))
    run("make_demo_coins", "--count", "6", "--seed", "4", "--out", str(tmp_path / "c"))

    def fingerprint(folder):
        return [(sha(folder / r["front"]), sha(folder / r["back"]), r["year"]) for r in read_labels(folder)]

    assert fingerprint(tmp_path / "a") == fingerprint(tmp_path / "b")
    assert fingerprint(tmp_path / "a") != fingerprint(tmp_path / "c")


def test_make_demo_coins_stores_verified_demo_coins_and_never_twice(tmp_path):
    # given the same seed written to a folder (the reference)
    run("make_demo_coins", "--count", "6", "--seed", "7", "--out", str(tmp_path / "ref"))
    reference = {
        (sha(tmp_path / "ref" / r["front"]), sha(tmp_path / "ref" / r["back"]), int(r["year"]))
        for r in read_labels(tmp_path / "ref")
    }

    # when it is stored in the database, twice
    first, _ = run("make_demo_coins", "--count", "6", "--seed", "7")
    second, _ = run("make_demo_coins", "--count", "6", "--seed", "7")

    # then the same six coins are verified labels of the default user "demo", stored once, with their photos
    coins = list(Coin.objects.select_related("owner"))
    assert {(c.front_sha256, c.back_sha256, c.verified_year) for c in coins} == reference
    assert {(c.source, c.owner.username, c.status) for c in coins} == {(Coin.Source.DEMO, "demo", Coin.Status.PENDING)}
    assert all(c.verified_at is not None and not c.predictions.exists() for c in coins)
    assert all(Path(settings.MEDIA_ROOT, c.front_image.name).is_file() for c in coins)
    assert "Stored 6" in first and "Stored 0" in second and "skipped 6" in second


def test_make_demo_coins_with_a_larger_count_adds_only_the_new_coins():
    run("make_demo_coins", "--count", "3", "--seed", "1")
    out, _ = run("make_demo_coins", "--count", "5", "--seed", "1")
    assert Coin.objects.count() == 5
    assert "Stored 2" in out and "skipped 3" in out


def test_make_demo_coins_for_a_named_owner(collector):
    run("make_demo_coins", "--count", "2", "--seed", "1", "--owner", collector.username)
    assert set(Coin.objects.values_list("owner__username", flat=True)) == {collector.username}


def test_make_demo_coins_refuses_an_unknown_owner():
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        run("make_demo_coins", "--count", "2", "--seed", "1", "--owner", "nobody")
    assert not Coin.objects.exists()


# --- import_coins ----------------------------------------------------------------------------------------------------


@pytest.fixture
def labelled_folder(tmp_path):
    """Two good rows and one bad row of each kind; returns (folder, {line number: expected reason})."""
    folder = tmp_path / "import"
    folder.mkdir()
    for name, seed in [("a_front.jpg", 1), ("a_back.jpg", 2), ("b_front.jpg", 3), ("b_back.jpg", 4), ("c.jpg", 5)]:
        (folder / name).write_bytes(jpeg_bytes(seed=seed))
    (folder / "notes.jpg").write_bytes(b"this is a shopping list, not a photo")
    lines = [
        "front,back,year,notes",
        "a_front.jpg,a_back.jpg,1874,bought in Lyon",  # line 2: good
        "c.jpg,missing.jpg,1900,",  # 3: missing file
        "notes.jpg,c.jpg,1900,",  # 4: not an image
        "c.jpg,a_back.jpg,1650,",  # 5: year out of range
        "c.jpg,a_back.jpg,18x4,",  # 6: year not a number
        "c.jpg,a_back.jpg",  # 7: missing column
        "b_front.jpg,b_back.jpg,2001",  # 8: good (no notes)
    ]
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    reasons = {
        3: "back file 'missing.jpg' not found",
        4: "front file 'notes.jpg' is not a usable image",
        5: "year 1650 is out of range 1700-2025",
        6: "year '18x4' is not a number",
        7: "missing column 'year'",
    }
    return folder, reasons


def test_import_coins_imports_good_rows_and_reports_each_bad_row_with_line_and_reason(labelled_folder):
    folder, reasons = labelled_folder
    out, err = run("import_coins", str(folder))

    coins = Coin.objects.order_by("verified_year")
    assert [(c.verified_year, c.source, c.notes) for c in coins] == [
        (1874, Coin.Source.IMPORT, "bought in Lyon"),
        (2001, Coin.Source.IMPORT, ""),
    ]
    assert coins[0].front_sha256 == sha(folder / "a_front.jpg") and coins[0].back_sha256 == sha(folder / "a_back.jpg")
    assert all(c.verified_at is not None and c.owner.username == "import" for c in coins)
    for line, reason in reasons.items():
        assert f"line {line}: {reason}" in err
    assert "line 2" not in err and "line 8" not in err
    assert "Imported 2, skipped duplicates 0, bad rows 5" in out


def test_import_coins_twice_imports_nothing_twice(labelled_folder, collector):
    folder, _ = labelled_folder
    run("import_coins", str(folder), "--owner", collector.username)
    out, _ = run("import_coins", str(folder / "labels.csv"), "--owner", collector.username)
    assert Coin.objects.count() == 2
    assert "Imported 0, skipped duplicates 2, bad rows 5" in out


def test_import_coins_skips_a_duplicate_row_within_the_same_file(tmp_path):
    (tmp_path / "f.jpg").write_bytes(jpeg_bytes(seed=1))
    (tmp_path / "b.jpg").write_bytes(jpeg_bytes(seed=2))
    (tmp_path / "labels.csv").write_text("front,back,year\nf.jpg,b.jpg,1800\nf.jpg,b.jpg,1800\n")
    out, _ = run("import_coins", str(tmp_path))
    assert Coin.objects.count() == 1 and "Imported 1, skipped duplicates 1, bad rows 0" in out


def test_import_coins_refuses_photos_outside_the_folder_without_saying_whether_they_exist(tmp_path):
    # given a secret photo outside the import folder, and rows that point at it (and at a twin that does not exist)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(jpeg_bytes(seed=1))
    folder = tmp_path / "deep" / "import"
    folder.mkdir(parents=True)
    (folder / "back.jpg").write_bytes(jpeg_bytes(seed=2))
    absent, secret = outside / "absent.jpg", outside / "secret.jpg"
    (folder / "labels.csv").write_text(
        "front,back,year\n"
        "../../outside/secret.jpg,back.jpg,1900\n"  # line 2: exists, relative
        "../../outside/absent.jpg,back.jpg,1900\n"  # line 3: does not exist, relative
        f"{secret},back.jpg,1900\n"  # line 4: exists, absolute
        f"{absent},back.jpg,1900\n"  # line 5: does not exist, absolute
    )

    # when the folder is imported
    out, err = run("import_coins", str(folder))

    # then no row is imported, and each is refused with the same words whether its photo exists or not
    assert not Coin.objects.exists()
    assert "Imported 0, skipped duplicates 0, bad rows 4" in out
    assert "line 2: front file '../../outside/secret.jpg' is outside the folder; skipped." in err
    assert "line 3: front file '../../outside/absent.jpg' is outside the folder; skipped." in err
    assert f"line 4: front file '{secret}' is outside the folder; skipped." in err
    assert f"line 5: front file '{absent}' is outside the folder; skipped." in err
    assert "not found" not in err and "not a usable image" not in err


@pytest.mark.parametrize(
    "content, problem",
    [
        (None, "No labels.csv"),
        ("", "is empty"),
        ("front,back,notes\na.jpg,b.jpg,x\n", "no column year"),
        (b"front,back,year\n\xff\xfe\xfa,b.jpg,1900\n", "not UTF-8"),
    ],
)
def test_import_coins_fails_when_the_labels_file_itself_is_unusable(tmp_path, content, problem):
    if isinstance(content, bytes):
        (tmp_path / "labels.csv").write_bytes(content)
    elif content is not None:
        (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(CommandError, match=problem):
        run("import_coins", str(tmp_path))
    assert not Coin.objects.exists()


@pytest.mark.slow
def test_import_coins_exit_status_is_non_zero_only_for_an_unusable_file(tmp_path, labelled_folder):
    folder, _ = labelled_folder
    env = {**os.environ, "COINSITE_VAR_DIR": str(tmp_path / "var"), "DJANGO_MEDIA_ROOT": str(tmp_path / "media")}
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=settings.BASE_DIR)

    no_file = subprocess.run(
        [*manage, "import_coins", str(tmp_path / "nowhere")], env=env, capture_output=True, text=True
    )
    with_bad_rows = subprocess.run([*manage, "import_coins", str(folder)], env=env, capture_output=True, text=True)

    assert no_file.returncode != 0 and "No labels.csv" in no_file.stderr
    assert with_bad_rows.returncode == 0, with_bad_rows.stderr
    assert "Imported 2, skipped duplicates 0, bad rows 5" in with_bad_rows.stdout
