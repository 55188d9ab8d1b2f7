"""manage.py sweep: run the housekeeping sweeps now (orphan photo files, coins left pending)."""

from django.core.management.base import BaseCommand

from predictions.sweeps import housekeeping_run


class Command(BaseCommand):
    help = "Remove photo files no coin names (older than the grace period) and ask again for coins left pending."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--grace-seconds", type=int, default=None, help="age a file without a row must reach (default: setting)"
        )
        parser.add_argument("--pending-after-seconds", type=int, default=120)

    def handle(self, *args, grace_seconds: int | None, pending_after_seconds: int, **options) -> None:
        result = housekeeping_run(grace_seconds=grace_seconds, pending_after_seconds=pending_after_seconds)
        self.stdout.write(
            f"{result.files_seen} photo file(s) seen, {result.orphans_removed} without a coin removed, "
            f"{result.pending_requeued} pending coin(s) asked for again"
        )
