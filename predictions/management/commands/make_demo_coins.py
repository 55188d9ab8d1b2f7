"""Generate synthetic coins (training.ml.synthetic): a labelled folder, or verified demo coins in the database."""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from predictions import services
from predictions.management.owners import command_owner
from predictions.models import Coin
from training.ml import synthetic

DEFAULT_OWNER = "demo"


class Command(BaseCommand):
    help = (
        "Generate COUNT synthetic front/back coin photos with known minting years, deterministic by --seed. "
        "With --out DIR, write the JPEG pairs and labels.csv (front,back,year) to DIR; without it, store them as "
        "verified coins (source=demo) owned by --owner (default: a user 'demo', created if missing). Coins already "
        "stored (same front and back image hashes) are not stored twice, so re-running with the same seed adds nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=100, help="how many coins (default 100)")
        parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same coins")
        parser.add_argument("--out", type=Path, help="write photos + labels.csv to this folder instead of the database")
        parser.add_argument(
            "--style",
            default="classic",
            choices=("classic", "northern"),
            help="the mint: classic, or northern (a second one)",
        )
        parser.add_argument("--owner", help=f"username owning the stored coins (default {DEFAULT_OWNER!r}, created)")

    def handle(
        self, *args, count: int, seed: int, out: Path | None, owner: str | None, style: str = "classic", **options
    ) -> None:
        if count < 0:
            raise CommandError("--count must be 0 or more.")
        quiet = options["verbosity"] == 0
        if out is not None:
            if owner:
                raise CommandError("--owner applies to coins stored in the database, not to --out.")
            labels = synthetic.write_dataset(out, count=count, seed=seed, progress=not quiet, style=style)
            self.stdout.write(self.style.SUCCESS(f"Wrote {count} coin pair(s) and {labels}."))
            return

        user = command_owner(owner, default=DEFAULT_OWNER)
        created = skipped = 0
        coins = tqdm(
            synthetic.iter_coins(count, seed, style=style),
            total=count,
            desc="demo coins",
            unit="coin",
            disable=quiet,
            file=getattr(self.stderr, "_out", self.stderr),
        )
        for front, back, year in coins:
            front_sha = hashlib.sha256(front).hexdigest()
            back_sha = hashlib.sha256(back).hexdigest()
            if Coin.objects.filter(front_sha256=front_sha, back_sha256=back_sha).exists():
                skipped += 1
                continue
            services.coin_create(
                owner=user,
                front=front,
                back=back,
                source=Coin.Source.DEMO,
                verified_year=year,
                notes=f"synthetic, seed {seed}" + (f", {style} mint" if style != "classic" else ""),
                enqueue_prediction=False,
            )
            created += 1
        self.stdout.write(
            self.style.SUCCESS(
                f"Stored {created} demo coin(s) for {user.username}; skipped {skipped} already stored (seed {seed})."
            )
        )
