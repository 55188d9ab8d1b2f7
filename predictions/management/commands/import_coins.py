"""Import a labelled folder (labels.csv + photos) as verified coins (source=import): they are training labels."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from predictions import services
from predictions.models import YEAR_MAX, YEAR_MIN, Coin

LABELS = "labels.csv"
REQUIRED_COLUMNS = ("front", "back", "year")
DEFAULT_OWNER = "import"


class BadRow(Exception):
    """A row that cannot become a coin; the message says why (the command adds the line number)."""


@dataclass(frozen=True)
class Row:
    line: int
    fields: dict[str, str | None]


class Command(BaseCommand):
    help = (
        "Import PATH (a folder with labels.csv, or the labels.csv itself) as verified coins (source=import). "
        "labels.csv has a header with the columns front, back, year and optionally notes; front/back are photo paths "
        "relative to the folder. A bad row (missing column, year not a number or outside 1700-2025, missing file, "
        "not an image) is reported with its line number and skipped; the other rows are imported. Coins already stored "
        "(same front and back SHA-256) are skipped, so importing twice imports nothing twice. Exits non-zero only if "
        "labels.csv itself is unusable (missing, unreadable, no header or a required column missing)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="folder containing labels.csv (or the CSV file)")
        parser.add_argument("--owner", help=f"username owning the coins (default {DEFAULT_OWNER!r}, created)")

    def handle(self, *args, path: Path, owner: str | None, **options) -> None:
        labels = path if path.is_file() else path / LABELS
        folder = labels.parent
        rows = self._read(labels)
        user = self._owner(owner)

        imported = duplicates = 0
        problems: list[tuple[int, str]] = []
        progress = tqdm(
            rows,
            desc="import",
            unit="coin",
            disable=options["verbosity"] == 0,
            file=getattr(self.stderr, "_out", self.stderr),
        )
        for row in progress:
            try:
                year, front, back, notes = self._parse(row, folder)
            except BadRow as problem:
                problems.append((row.line, str(problem)))
                continue
            if Coin.objects.filter(front_sha256=front.sha256, back_sha256=back.sha256).exists():
                duplicates += 1
                continue
            services.coin_create_checked(
                owner=user,
                front=front,
                back=back,
                source=Coin.Source.IMPORT,
                verified_year=year,
                notes=notes,
                enqueue_prediction=False,
            )
            imported += 1

        for line, reason in problems:
            self.stderr.write(f"{labels.name} line {line}: {reason}; skipped.")
        summary = f"Imported {imported}, skipped duplicates {duplicates}, bad rows {len(problems)} (from {labels})."
        self.stdout.write(self.style.WARNING(summary) if problems else self.style.SUCCESS(summary))

    def _read(self, labels: Path) -> list[Row]:
        """All data rows with their line numbers, or CommandError if the file as a whole is unusable."""
        if not labels.is_file():
            raise CommandError(f"No {LABELS} found at {labels}.")
        try:
            with labels.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle, restkey="_extra")
                header = reader.fieldnames
                if not header or not any(name.strip() for name in header):
                    raise CommandError(f"{labels} is empty: it needs a header line with {', '.join(REQUIRED_COLUMNS)}.")
                reader.fieldnames = [name.strip().lower() for name in header]
                missing = [column for column in REQUIRED_COLUMNS if column not in reader.fieldnames]
                if missing:
                    raise CommandError(
                        f"{labels}: the header has no column {', '.join(missing)} "
                        f"(found: {', '.join(reader.fieldnames)}; needed: {', '.join(REQUIRED_COLUMNS)})."
                    )
                rows = []
                for fields in reader:
                    if not any((value or "").strip() for key, value in fields.items() if key != "_extra"):
                        continue  # blank line
                    rows.append(Row(line=reader.line_num, fields=fields))
                return rows
        except UnicodeDecodeError as error:
            raise CommandError(f"{labels} is not UTF-8 text ({error.reason} at byte {error.start}).") from error
        except csv.Error as error:
            raise CommandError(f"{labels} is not a readable CSV file: {error}.") from error

    def _parse(self, row: Row, folder: Path):
        """(year, front, back, notes) of a good row; BadRow naming the first problem otherwise."""
        from training.ml import images

        values = {}
        for column in REQUIRED_COLUMNS:
            value = (row.fields.get(column) or "").strip()
            if not value:
                raise BadRow(f"missing column {column!r}")
            values[column] = value
        text = values["year"]
        try:
            year = int(text)
        except ValueError:
            raise BadRow(f"year {text!r} is not a number") from None
        if not YEAR_MIN <= year <= YEAR_MAX:
            raise BadRow(f"year {year} is out of range {YEAR_MIN}-{YEAR_MAX}")
        photos = []
        for side in ("front", "back"):
            file = folder / values[side]
            if not file.is_file():
                raise BadRow(f"{side} file {values[side]!r} not found")
            try:
                photos.append(services.photo_check(file.read_bytes(), field=f"{side}_image"))
            except images.ImageError as error:
                raise BadRow(f"{side} file {values[side]!r} is not a usable image: {error}") from None
            except OSError as error:
                raise BadRow(f"{side} file {values[side]!r} cannot be read: {error.strerror}") from None
        notes = (row.fields.get("notes") or "").strip()
        return year, photos[0], photos[1], notes

    def _owner(self, username: str | None):
        """An explicit --owner must exist (a typo must not create an account); the default 'import' is created."""
        User = get_user_model()
        if username:
            try:
                return User.objects.get(username=username)
            except User.DoesNotExist as error:
                raise CommandError(f"No user named {username!r}; create it first or leave --owner out.") from error
        user, created = User.objects.get_or_create(username=DEFAULT_OWNER)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return user
