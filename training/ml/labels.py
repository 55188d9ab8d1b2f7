"""Labelled coins and the labels.csv reader, without torch: the site's services, the import command and the admin
name a CoinSample or read labels.csv in processes that never train (data.py, the PyTorch dataset, re-exports these).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from training.ml.photo_errors import ImageError

LABELS_FILENAME = "labels.csv"

T = TypeVar("T")


@dataclass(frozen=True)
class CoinSample:
    """One labelled coin: two photos (file paths or bytes) and the minting year; ``weight`` scales its loss."""

    front: Path | bytes
    back: Path | bytes
    year: int
    weight: float = 1.0
    key: str = ""
    notes: str = ""


@dataclass(frozen=True)
class LabelRowError:
    """A labels.csv row that was skipped, with its line number (the header is line 1) and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


REQUIRED_COLUMNS = ("front", "back", "year")
SIDES = ("front", "back")


class LabelsFileError(ValueError):
    """labels.csv as a whole is unusable (empty, not UTF-8, not CSV, a required column missing): nothing in it can
    be trusted, so callers stop instead of skipping rows."""


class LabelRowProblem(ValueError):
    """Why one row cannot be used; the reader adds the line number (LabelRowError)."""


@dataclass(frozen=True)
class LabelRow:
    """A labels.csv row whose columns, year and photo paths passed the checks; the photos' bytes are not read yet.

    Both paths are resolved and lie inside the labels folder, so a row such as ``../../outside/secret.jpg`` or an
    absolute path never makes a caller read (or say anything about) a file elsewhere.
    """

    line: int
    front: Path
    back: Path
    year: int
    notes: str
    names: dict[str, str]

    def read_photo(self, side: str, check: Callable[[bytes], T]) -> T:
        """``check`` applied to one side's bytes; LabelRowProblem, in the reader's wording, if it fails.

        The caller chooses the check (training the library's limits, imports the upload service's), so both name
        a bad photo the same way.
        """
        name = self.names[side]
        try:
            return check((self.front if side == "front" else self.back).read_bytes())
        except ImageError as error:
            raise LabelRowProblem(f"{side} file {name!r} is not a usable image: {error}") from None
        except OSError as error:
            raise LabelRowProblem(f"{side} file {name!r} cannot be read: {error.strerror}") from None


def labels_path(path: str | Path) -> Path:
    """The labels.csv that ``path`` names: the file itself, or labels.csv inside the folder."""
    path = Path(path)
    return path if path.is_file() else path / LABELS_FILENAME


def read_label_rows(
    path: str | Path, *, year_min: int = 1700, year_max: int = 2025
) -> tuple[list[LabelRow], list[LabelRowError]]:
    """The one labels.csv parser (training, evaluation and ``import_coins``): good rows and bad rows by line.

    Bad rows (missing cell, year not a whole number or out of range, extra cells, a photo outside the folder or
    missing) are reported with their line number and skipped, so one broken row does not stop an import; blank rows
    are passed over. A missing labels.csv raises FileNotFoundError and an unusable one LabelsFileError.
    """
    labels = labels_path(path)
    if not labels.is_file():
        raise FileNotFoundError(f"No {LABELS_FILENAME} found at {labels}.")
    root = labels.parent.resolve()
    rows: list[LabelRow] = []
    errors: list[LabelRowError] = []
    try:
        with labels.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames
            if not header or not any(name.strip() for name in header):
                raise LabelsFileError(f"{labels} is empty: it needs a header line with {', '.join(REQUIRED_COLUMNS)}.")
            reader.fieldnames = [name.strip().lower() for name in header]
            missing = [column for column in REQUIRED_COLUMNS if column not in reader.fieldnames]
            if missing:
                raise LabelsFileError(
                    f"{labels}: the header has no column {', '.join(missing)} "
                    f"(found: {', '.join(reader.fieldnames)}; needed: {', '.join(REQUIRED_COLUMNS)})."
                )
            for cells in reader:
                if not any(_cell_text(value) for value in cells.values()):
                    continue  # blank line
                line = reader.line_num  # physical line of the row's end (a quoted cell may span lines)
                try:
                    rows.append(_label_row(cells, root, line, year_min, year_max))
                except LabelRowProblem as problem:
                    errors.append(LabelRowError(line, str(problem)))
    except UnicodeDecodeError as error:
        raise LabelsFileError(f"{labels} is not UTF-8 text ({error.reason} at byte {error.start}).") from error
    except csv.Error as error:
        raise LabelsFileError(f"{labels} is not a readable CSV file: {error}.") from error
    return rows, errors


def _cell_text(value: str | list[str] | None) -> str:
    """A cell stripped; the cells beyond the header (a list under the key None) joined."""
    if isinstance(value, list):
        return "".join(value).strip()
    return (value or "").strip()


def _label_row(cells: dict, root: Path, line: int, year_min: int, year_max: int) -> LabelRow:
    values = {}
    for column in REQUIRED_COLUMNS:
        value = _cell_text(cells.get(column))
        if not value:
            raise LabelRowProblem(f"missing column {column!r}")
        values[column] = value
    if _cell_text(cells.get(None)):
        raise LabelRowProblem("more cells than columns")
    year = _whole_year(values["year"])
    if not year_min <= year <= year_max:
        raise LabelRowProblem(f"year {year} is out of range {year_min}-{year_max}")
    paths = {}
    for side in SIDES:
        name = values[side]
        path = (root / name).resolve()
        # Checked before existence, and worded the same whether or not the file exists, so labels.csv cannot be
        # used to probe the disk.
        if not path.is_relative_to(root):
            raise LabelRowProblem(f"{side} file {name!r} is outside the folder")
        if not path.is_file():
            raise LabelRowProblem(f"{side} file {name!r} not found")
        paths[side] = path
    notes = _cell_text(cells.get("notes"))
    return LabelRow(
        line=line,
        front=paths["front"],
        back=paths["back"],
        year=year,
        notes=notes,
        names={side: values[side] for side in SIDES},
    )


def _whole_year(text: str) -> int:
    """The year in ``text``; "1874.0" (as spreadsheets export it) counts, "1874.5" and "18x4" do not."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        as_float = float(text)
    except ValueError:
        raise LabelRowProblem(f"year {text!r} is not a number") from None
    if not as_float.is_integer():
        raise LabelRowProblem(f"year {text!r} is not a whole number") from None
    return int(as_float)
