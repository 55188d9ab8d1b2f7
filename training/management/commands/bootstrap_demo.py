"""Set up a demo site: three role users, a few hundred generated coins, and a first trained model.

Idempotent: `make run` and Procfile.dev (`make run-distributed`) call it on every start; a second run creates nothing
and trains nothing. The production Procfile never runs it (it prints passwords).

`make run` passes --train-in-background: the first model trains in a child process (`bootstrap_demo
--first-model-only`) while the server starts, instead of keeping the site closed for the whole run (measured on a
shared 2-core machine: 32 minutes before the first page). Pages say a model is on its way; uploads wait, pending, and
are predicted when the model lands: the child's production_changed receiver (predictions.receivers) queues the coins
that waited, and the server process, which serves no model yet, reads the alias again at its next prediction.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

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
from training.ml.config import TrainConfig
from training.models import TrainingRun
from training.selectors import labelled_coins
from training.services.first_model import TAIL_SECONDS, load_slowdown, machine_load, remaining_seconds
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
# cost of logging, the ONNX export, registration and the first comparison (TAIL_SECONDS). Scaled by the machine's load
# for the first estimate, replaced by the run's own measured speed after every epoch.
SECONDS_PER_COIN_EPOCH_FOLD = {"reader": (0.0097, 192), "regression": (0.013, 128)}
PREFIX = "[first model]"


class FirstModelStopped(Exception):  # noqa: N818 - a stop, not an error
    """SIGINT/SIGTERM while the first model trains in its own process (Ctrl-C on `make run`): raised as an Exception so
    that the run's guard (training.services.lease.run_guarded) ends the run FAILED and frees the training lock, and the
    next `make run` trains again instead of waiting TRAINING_LEASE_SECONDS for the lease to expire."""


def _stop_on_signal(signum: int, frame) -> None:
    raise FirstModelStopped(f"stopped by signal {signal.Signals(signum).name} (Ctrl-C on make run?)")


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
        parser.add_argument(
            "--train-in-background",
            action="store_true",
            help="train the first model in a child process and return at once, so the server starts meanwhile "
            "(`make run`); without a broker only",
        )
        parser.add_argument(
            "--first-model-run",
            type=int,
            metavar="ID",
            help="only execute the queued first-model run ID (the child process of --train-in-background)",
        )

    def handle(
        self,
        *args,
        coins: int,
        seed: int,
        no_train: bool,
        train_in_background: bool,
        first_model_run: int | None,
        **options,
    ) -> None:
        started = time.monotonic()
        flat = overrides_of(options) or shlex.split(os.environ.get("COINSITE_BOOTSTRAP_SET", DEFAULT_SET))
        if first_model_run is not None:
            signal.signal(signal.SIGINT, _stop_on_signal)
            signal.signal(signal.SIGTERM, _stop_on_signal)
            self._first_model_train(first_model_run)
            return
        self._users()
        self._coins(count=coins, seed=seed)
        if not no_train:
            if train_in_background and settings.CELERY_TASK_ALWAYS_EAGER:
                self._first_model_in_background(flat)
            else:
                self._first_model(flat)
        self.stdout.write(self.style.SUCCESS(f"Demo ready ({time.monotonic() - started:.0f} s)."))

    def _first_model_in_background(self, overrides: list[str]) -> subprocess.Popen | None:
        """Start `bootstrap_demo --first-model-only` as a child process when a first model is needed; it writes its
        progress to this terminal (lines start with [first model]) and keeps running after this command returns."""
        if production_version_registered() is not None:
            self.stdout.write(f"A model is in production already ({settings.MLFLOW_MODEL_NAME}@production).")
            return None
        manage = Path(settings.BASE_DIR) / "manage.py"
        command = [sys.executable, str(manage), "bootstrap_demo", "--first-model-only"]
        if overrides:
            command += ["--set", *overrides]
        self.stdout.flush()
        child = subprocess.Popen(command, cwd=settings.BASE_DIR)  # same terminal and process group: Ctrl-C stops it
        self.stdout.write(
            f"{PREFIX} training in the background (process {child.pid}); the site starts now and says so on every "
            "page. Uploads wait and get their year when the model lands."
        )
        return child

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
        """Train the first model here, in the foreground (`make demo`), or queue it for the training workers (with a
        broker: Procfile.dev's web starts meanwhile, and uploads wait until the first version becomes Production,
        which queues their predictions)."""
        eager = bool(settings.CELERY_TASK_ALWAYS_EAGER)
        run = self._first_model_plan(overrides, enqueue=not eager)
        if run is None:
            return
        if not eager:
            self.stdout.write(f"Queued training run #{run.pk} on the `training` worker; the site starts meanwhile.")
            return
        self._first_model_train(run.pk)

    def _first_model_in_background(self, overrides: list[str]) -> subprocess.Popen | None:
        """Queue the first model's run now (so every page says it is on its way from the first second) and start
        `bootstrap_demo --first-model-run ID` to train it in a child process; it writes its progress to this
        terminal (lines start with [first model]) and keeps running after this command returns."""
        run = self._first_model_plan(overrides, enqueue=False)
        if run is None:
            return None
        manage = Path(settings.BASE_DIR) / "manage.py"
        self.stdout.flush()
        # Same terminal and process group as `make run`: Ctrl-C stops it too (and it marks its run failed).
        child = subprocess.Popen(
            [sys.executable, str(manage), "bootstrap_demo", "--first-model-run", str(run.pk)], cwd=settings.BASE_DIR
        )
        self.stdout.write(
            f"{PREFIX} training run #{run.pk} in the background (process {child.pid}); the site starts now and says "
            "so on every page. Uploads wait and get their year when the model lands."
        )
        return child

    def _first_model_plan(self, overrides: list[str], *, enqueue: bool) -> TrainingRun | None:
        """The queued run that trains the first model, with the estimate printed; None (said why) when none is to
        be trained: a model is in production, or a run is running already. A run left queued by a process that
        stopped before it started (a killed `make run`) is trained now rather than blocking every later start."""
        name = settings.MLFLOW_MODEL_NAME
        if production_version_registered() is not None:
            self.stdout.write(f"A model is in production already ({name}@production); not training.")
            return None
        training_run_reap_stale()
        active = TrainingRun.objects.filter(status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]).first()
        if active is not None and (active.status == TrainingRun.Status.RUNNING or enqueue):
            self.stdout.write(
                f"Training run #{active.pk} is {active.status} already; not starting another. (If its process died, "
                f"it is marked failed {getattr(settings, 'TRAINING_LEASE_SECONDS', 900)} s "
                "after its last heartbeat and the next bootstrap_demo trains.)"
            )
            return None
        if active is not None:
            self.stdout.write(f"{PREFIX} Training run #{active.pk} is queued and nothing runs it: training it now.")
            config, run = TrainConfig.from_dict(active.config), active
        else:
            try:
                config = training_config_load(overrides=overrides)
            except Exception as error:  # noqa: BLE001 - show the config error as a command error
                raise CommandError(f"bad COINSITE_BOOTSTRAP_SET / --set: {error}") from error
            run = None
        labelled = labelled_coins().count()
        seconds, size = SECONDS_PER_COIN_EPOCH_FOLD[config.head]
        per_unit = seconds * (config.image_size / size) ** 2
        load, cpus = machine_load()
        slowdown = load_slowdown(load, cpus)
        training_units = labelled * (1 - settings.EVALUATION_SHARE) * config.epochs * config.folds * per_unit
        estimate = (TAIL_SECONDS + training_units) * slowdown
        self.stdout.write(
            f"{PREFIX} No model in production yet: training the first one on {labelled} labelled coins "
            f"({config.folds} folds x {config.epochs} epochs, "
            f"{'the date reader from the base' if config.head == 'reader' else config.backbone}, {config.image_size} px; "
            f"overrides: {' '.join(overrides) or 'none'}). This takes roughly {max(estimate / 60, 0.1):.1f} minutes "
            f"at this machine's load ({load:.1f} on {cpus} cores: x{slowdown:.1f} an idle machine's time); "
            "the estimate is measured again after every epoch ..."
        )
        return run or training_run_start(overrides=overrides, enqueue=enqueue, origin=TrainingRun.Origin.BOOTSTRAP)

    def _first_model_train(self, run_id: int) -> None:
        """Execute the queued first run in this process and say how it ended."""
        name = settings.MLFLOW_MODEL_NAME
        config = TrainConfig.from_dict(TrainingRun.objects.get(pk=run_id).config)
        self._threads_for_a_busy_machine()
        started = time.monotonic()
        on_epoch = self._epoch_reporter(folds=config.folds, epochs=config.epochs, tail=TAIL_SECONDS)
        try:
            run = training_run_execute(run_id=run_id, progress=False, on_epoch=on_epoch, fold_parallel=False)
        except TrainingBusy as busy:
            self.stdout.write(f"Not training: {busy}")
            return
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"Training run #{run.pk} {run.status}: {run.error}")
        version = getattr(run, "model_version", None)
        metrics = run.metrics
        self.stdout.write(
            self.style.SUCCESS(
                f"{PREFIX} Trained and registered {name} v{version.version if version else '?'} (production) in "
                f"{time.monotonic() - started:.0f} s: cross-validated MAE {metrics.get('mae', float('nan')):.1f} years vs "
                f"{metrics.get('baseline_mae', float('nan')):.1f} for the constant baseline."
            )
        )
        if not metrics.get("beats_baseline", True):
            self.stdout.write(
                self.style.WARNING(f"{PREFIX} WARNING: the first model does NOT beat the constant baseline.")
            )
        # The coins waiting for a model were queued (here: predicted in-process) when it became Production.

    def _epoch_reporter(self, *, folds: int, epochs: int, tail: float):
        """on_epoch(fold, epoch, metrics) that prints one line per epoch: the speed measured so far, the machine's
        load now, and the minutes left at that speed (the load is in the measurement: a busier machine slows the
        epochs, and the estimate follows)."""
        started = time.monotonic()
        total = folds * epochs

        def report(fold: int, epoch: int, metrics: dict) -> None:
            done = (fold - 1) * epochs + epoch
            elapsed = time.monotonic() - started
            left = remaining_seconds(elapsed=elapsed, done=done, total=total, tail=tail)
            load, cpus = machine_load()
            mae = metrics.get("val_mae")
            self.stdout.write(
                f"{PREFIX} fold {fold}/{folds}, epoch {epoch}/{epochs}"
                + (f" (validation MAE {mae:.1f} y)" if mae is not None else "")
                + f": {elapsed / done:.1f} s per epoch measured, load {load:.1f} on {cpus} cores; "
                f"about {(left or 0) / 60:.1f} min to go"
            )
            self.stdout.flush()

        return report

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
