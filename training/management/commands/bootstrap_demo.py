"""Set up a demo site: three role users, a few hundred generated coins, and a first trained model.

Idempotent: `make run` and Procfile.dev (`make run-distributed`) call it on every start; a second run creates nothing
and trains nothing. The production Procfile never runs it (it prints passwords).
"""

from __future__ import annotations

import os
import secrets
import shlex
import time

import torch
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from predictions import roles
from predictions.models import Coin
from registry.selectors import production_version_registered
from training.errors import TrainingBusy
from training.models import TrainingRun
from training.selectors import labelled_coins
from training.services.lease import training_run_reap_stale
from training.services.runs import training_config_load, training_run_execute, training_run_start

from .train import add_set_argument, overrides_of

DEMO_USERS = [
    # username, role group, is_staff
    ("collector", roles.COLLECTOR, False),
    ("curator", roles.CURATOR, True),
    ("owner", roles.MODEL_OWNER, True),
]
DEFAULT_COINS = 300
DEFAULT_SEED = 2024
# Small enough for a few minutes on 2 CPU cores with 300 coins. The date reader starts from the pretrained base, so a
# short fine-tune already reads the dates (quick run measured here: 600 coins, 3 folds x 10 epochs, 204 s, 96.8% of
# 1,000 fresh coins read to the year).
DEFAULT_SET = "epochs=12 folds=3 patience=0"
# Rough cost of one coin, one epoch, one fold on a 2-core CPU (train + validate) at a head's default size: the date
# reader at 192 px (measured: 0.0097 s), the seed's mobilenet_v3_small regression at 128 px (0.013 s); plus the fixed
# cost of logging, the ONNX export, registration and the first comparison.
SECONDS_PER_COIN_EPOCH_FOLD = {"reader": (0.0097, 192), "regression": (0.013, 128)}
FIXED_SECONDS = 30


class Command(BaseCommand):
    help = (
        "Create the demo users (collector, curator, owner), demo coins (source=demo) when there are none, and train "
        "the first model when no version has the alias `production`. Safe to run again: it only does what is missing. "
        "Passwords come from COINSITE_DEMO_PASSWORD or are generated, printed once and written to "
        "var/demo-credentials.txt. COINSITE_BOOTSTRAP_COINS and COINSITE_BOOTSTRAP_SET (space-separated key=value) "
        "change the coin count and the training config overrides."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--coins",
            type=int,
            default=int(os.environ.get("COINSITE_BOOTSTRAP_COINS", DEFAULT_COINS)),
            help=f"demo coins to generate when there are none (default {DEFAULT_COINS}, env COINSITE_BOOTSTRAP_COINS)",
        )
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the generated coins")
        add_set_argument(
            parser,
            description=(
                f"training config overrides for the first model (default: {DEFAULT_SET!r}, env COINSITE_BOOTSTRAP_SET)"
            ),
        )
        parser.add_argument("--no-train", action="store_true", help="do not train the first model")

    def handle(self, *args, coins: int, seed: int, no_train: bool, **options) -> None:
        started = time.monotonic()
        self._users()
        self._coins(count=coins, seed=seed)
        if not no_train:
            flat = overrides_of(options) or shlex.split(os.environ.get("COINSITE_BOOTSTRAP_SET", DEFAULT_SET))
            self._first_model(flat)
        self.stdout.write(self.style.SUCCESS(f"Demo ready ({time.monotonic() - started:.0f} s)."))

    # ---------------------------------------------------------------------------------------------------------------

    def _users(self) -> None:
        User = get_user_model()
        env_password = os.environ.get("COINSITE_DEMO_PASSWORD", "")
        created_lines = []
        for username, role, is_staff in DEMO_USERS:
            if User.objects.filter(username=username).exists():
                continue
            password = env_password or secrets.token_urlsafe(12)
            with transaction.atomic():
                user = User.objects.create_user(
                    username=username, email=f"{username}@example.org", password=password, is_staff=is_staff
                )
                roles.user_add_role(user=user, role=role)
            created_lines.append((username, role, password if not env_password else "$COINSITE_DEMO_PASSWORD"))
            self.stdout.write(f"Created demo user {username!r} ({role}) password: {password}")
        if created_lines:
            path = settings.VAR_DIR / "demo-credentials.txt"
            with open(path, "a", encoding="utf-8") as handle:
                for username, role, password in created_lines:
                    handle.write(f"{username}\t{role}\t{password}\n")
            os.chmod(path, 0o600)
            self.stdout.write(f"Demo credentials written to {path} (shown only now).")
        else:
            self.stdout.write("Demo users exist already.")

    def _coins(self, *, count: int, seed: int) -> None:
        if Coin.objects.filter(source=Coin.Source.DEMO).exists():
            self.stdout.write("Demo coins exist already.")
            return
        if count <= 0:
            return
        self.stdout.write(f"Generating {count} demo coins (verified years, owner 'collector') ...")
        started = time.monotonic()
        call_command("make_demo_coins", count=count, seed=seed, owner="collector", stdout=self.stdout)
        self.stdout.write(
            f"  {Coin.objects.filter(source=Coin.Source.DEMO).count()} demo coins in {time.monotonic() - started:.0f} s."
        )

    def _first_model(self, overrides: list[str]) -> None:
        name = settings.MLFLOW_MODEL_NAME
        if production_version_registered() is not None:
            self.stdout.write(f"A model is in production already ({name}@production); not training.")
            return
        training_run_reap_stale()
        active = TrainingRun.objects.filter(status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]).first()
        if active is not None:
            self.stdout.write(
                f"Training run #{active.pk} is {active.status} already; not starting another. (If its process died, "
                f"it is marked failed {getattr(settings, 'TRAINING_LEASE_SECONDS', 900)} s "
                "after its last heartbeat and the next bootstrap_demo trains.)"
            )
            return
        try:
            config = training_config_load(overrides=overrides)
        except Exception as error:  # noqa: BLE001 - show the config error as a command error
            raise CommandError(f"bad COINSITE_BOOTSTRAP_SET / --set: {error}") from error
        labelled = labelled_coins().count()
        seconds, size = SECONDS_PER_COIN_EPOCH_FOLD[config.head]
        per_unit = seconds * (config.image_size / size) ** 2
        estimate = FIXED_SECONDS + labelled * (1 - settings.EVALUATION_SHARE) * config.epochs * config.folds * per_unit
        self.stdout.write(
            f"No model in production yet: training the first one on {labelled} labelled coins "
            f"({config.folds} folds x {config.epochs} epochs, "
            f"{'the date reader from the base' if config.head == 'reader' else config.backbone}, {config.image_size} px; "
            f"overrides: {' '.join(overrides) or 'none'}). This takes roughly {max(estimate / 60, 0.1):.1f} minutes "
            f"on 2 CPU cores ..."
        )
        if not settings.CELERY_TASK_ALWAYS_EAGER:
            # Distributed: the training worker trains; the web server starts now and uploads wait (pending) until
            # the first version becomes Production, which queues their predictions.
            run = training_run_start(overrides=overrides, enqueue=True, origin=TrainingRun.Origin.BOOTSTRAP)
            self.stdout.write(f"Queued training run #{run.pk} on the `training` worker; the site starts meanwhile.")
            return
        self._threads_for_a_busy_machine()
        started = time.monotonic()
        run = training_run_start(overrides=overrides, enqueue=False, origin=TrainingRun.Origin.BOOTSTRAP)
        try:
            run = training_run_execute(run_id=run.id, progress=True, fold_parallel=False)
        except TrainingBusy as busy:
            self.stdout.write(f"Not training: {busy}")
            return
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"Training run #{run.pk} {run.status}: {run.error}")
        version = getattr(run, "model_version", None)
        metrics = run.metrics
        self.stdout.write(
            self.style.SUCCESS(
                f"Trained and registered {name} v{version.version if version else '?'} (production) in "
                f"{time.monotonic() - started:.0f} s: cross-validated MAE {metrics.get('mae', float('nan')):.1f} years vs "
                f"{metrics.get('baseline_mae', float('nan')):.1f} for the constant baseline."
            )
        )
        if not metrics.get("beats_baseline", True):
            self.stdout.write(self.style.WARNING("WARNING: the first model does NOT beat the constant baseline."))
        # The coins waiting for a model were queued (here: predicted in-process) when it became Production.

    def _threads_for_a_busy_machine(self) -> None:
        """On a machine already busy with other work, one torch thread: measured on a shared 2-core box, OpenMP's
        spin-waiting made two threads about 25x slower per step than one (the demo would take far over 5 minutes).
        An explicit OMP_NUM_THREADS wins; an idle machine keeps torch's default."""
        if "OMP_NUM_THREADS" in os.environ or not hasattr(os, "getloadavg"):
            return
        load, cpus = os.getloadavg()[0], os.cpu_count() or 1
        if load > cpus / 2:
            torch.set_num_threads(1)
            self.stdout.write(f"(the machine is busy, load {load:.1f} on {cpus} cores: training with one torch thread)")
