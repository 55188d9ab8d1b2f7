"""Wait until the MLflow tracking server answers (Procfile.dev starts web and MLflow together)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Wait until the MLflow tracking server at MLFLOW_TRACKING_URI answers its /health endpoint. "
        "Returns at once for a local store (sqlite:, file:, a path) or Databricks."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--timeout", type=float, default=120.0, help="seconds to wait before giving up (default 120)"
        )
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between attempts (default 1)")

    def handle(self, *args, timeout: float, interval: float, **options) -> None:
        uri = settings.MLFLOW_TRACKING_URI
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https"):
            self.stdout.write(f"MLflow tracking store {parts.scheme or 'file'}: is local, nothing to wait for.")
            return
        health = f"{uri.rstrip('/')}/health"
        shown = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
        deadline = time.monotonic() + timeout
        last_error = ""
        self.stdout.write(f"Waiting for the MLflow tracking server at {shown} (up to {timeout:g} s) ...")
        while True:
            try:
                with urllib.request.urlopen(health, timeout=min(5.0, max(interval, 1.0))) as response:  # noqa: S310 - http(s) only
                    if response.status < 500:
                        self.stdout.write(self.style.SUCCESS(f"MLflow tracking server at {shown} is up."))
                        return
                    last_error = f"HTTP {response.status}"
            except urllib.error.HTTPError as error:
                if error.code < 500:  # it answers (e.g. auth in front of /health): up
                    self.stdout.write(
                        self.style.SUCCESS(f"MLflow tracking server at {shown} answers (HTTP {error.code}).")
                    )
                    return
                last_error = f"HTTP {error.code}"
            except (urllib.error.URLError, OSError) as error:
                last_error = str(getattr(error, "reason", error))
            if time.monotonic() >= deadline:
                raise CommandError(
                    f"MLflow tracking server at {shown} did not answer within {timeout:g} s ({last_error})."
                )
            time.sleep(interval)
