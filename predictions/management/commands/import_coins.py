"""Import a labelled folder (labels.csv + photos) as verified coins (source=import): they are training labels."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from predictions import services
from predictions.management.owners import command_owner
from predictions.models import YEAR_MAX, YEAR_MIN, Coin
from training.ml.labels import LabelRowError, LabelRowProblem, LabelsFileError, labels_path, read_label_rows

DEFAULT_OWNER = "import"


class Command(BaseCommand):
    help = (
        "Import PATH (a folder with labels.csv, or the labels.csv itself) as verified coins (source=import). "
        "labels.csv has a header with the columns front, back, year and optionally notes; front/back are photo paths "
        "relative to the folder. A bad row (missing column, year not a number or outside 1700-2025, a photo outside "
        "the folder, missing file, not an image) is reported with its line number and skipped; the other rows are imported. Coins already stored "
        "(same front and back SHA-256) are skipped, so importing twice imports nothing twice. Exits non-zero only if "
        "labels.csv itself is unusable (missing, unreadable, no header or a required column missing)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="folder containing labels.csv (or the CSV file)")
        parser.add_argument("--owner", help=f"username owning the coins (default {DEFAULT_OWNER!r}, created)")

    def handle(self, *args, path: Path, owner: str | None, **options) -> None:
        labels = labels_path(path)
        try:
            rows, problems = read_label_rows(labels, year_min=YEAR_MIN, year_max=YEAR_MAX)
        except (FileNotFoundError, LabelsFileError) as error:
            raise CommandError(str(error)) from error
        user = command_owner(owner, default=DEFAULT_OWNER)

        imported = duplicates = 0
        progress = tqdm(
            rows,
            desc="import",
            unit="coin",
            disable=options["verbosity"] == 0,
            file=getattr(self.stderr, "_out", self.stderr),
        )
        for row in progress:
            try:
                # The upload service's checks, so an imported photo meets the same limits as an uploaded one.
                front = row.read_photo("front", lambda data: services.photo_check(data, field="front_image"))
                back = row.read_photo("back", lambda data: services.photo_check(data, field="back_image"))
            except LabelRowProblem as problem:
                problems.append(LabelRowError(row.line, str(problem)))
                continue
            if Coin.objects.filter(front_sha256=front.sha256, back_sha256=back.sha256).exists():
                duplicates += 1
                continue
            services.coin_create_checked(
                owner=user,
                front=front,
                back=back,
                source=Coin.Source.IMPORT,
                verified_year=row.year,
                notes=row.notes,
                enqueue_prediction=False,
            )
            imported += 1

        for problem in sorted(problems, key=lambda problem: problem.line):
            self.stderr.write(f"{labels.name} line {problem.line}: {problem.reason}; skipped.")
        summary = f"Imported {imported}, skipped duplicates {duplicates}, bad rows {len(problems)} (from {labels})."
        self.stdout.write(self.style.WARNING(summary) if problems else self.style.SUCCESS(summary))
