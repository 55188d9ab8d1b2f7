"""The training commands: train, retrain, evaluate, bootstrap_demo and wait_for_mlflow."""

from __future__ import annotations

import http.server
import io
import json
import threading
from pathlib import Path

import mlflow
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from predictions.models import Coin
from predictions.services import coin_create
from registry.models import Promotion
from training.ml import synthetic, tracking
from training.ml.pretrain import PretrainConfig, load_base_state
from training.models import TrainingRun

pytestmark = pytest.mark.django_db

# The date reader from the committed base (the default config), small: one epoch on a few dozen 128 px coins
# already beats the constant baseline by far (measured: MAE 6.7 against 83), as a model must before it may serve.
TINY = ["image_size=128", "epochs=1", "folds=2", "batch_size=8", "patience=0", "serve_int8=false"]


@pytest.fixture
def labelled(collector):
    return [
        coin_create(
            owner=collector, front=f, back=b, source=Coin.Source.DEMO, verified_year=y, enqueue_prediction=False
        )
        for f, b, y in synthetic.iter_coins(28, seed=5, size=128)
    ]


def run_command(*args, **kwargs) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **kwargs)
    return out.getvalue()


# --- train / retrain / evaluate --------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_retrain_and_evaluate_print_their_tables(model_name, labelled, tmp_path):
    # train: the first version, with the per-fold table and the baseline side by side
    output = run_command("train", "--set", *TINY)
    assert "fold" in output and "baseline MAE" in output
    assert "mean ± std over folds" in output and "constant baseline" in output
    for label in ("MAE (years)", "MSE", "R²", "within ±5 y", "within ±10 y"):
        assert label in output
    assert "spread: std of predictions" in output and "interval coverage" in output
    assert "now in production" in output
    assert ("does NOT beat the constant baseline" in output) or ("Beats the constant baseline" in output)
    v1 = tracking.get_alias_version(model_name, "production")
    assert v1 is not None

    # retrain: candidate vs production, by decade, on corrected coins, and the verdict
    output = run_command("retrain", "--set", *TINY, "seed=3")
    assert f"production v{v1}" in output and "candidate v" in output
    assert "MAE by decade" in output and "corrected coins" in output
    assert "Verdict: " in output
    assert tracking.get_alias_version(model_name, "production") == v1 or "PROMOTED" in output

    # evaluate: a labels.csv folder
    synthetic.write_dataset(tmp_path / "data", count=6, seed=77, size=64)
    output = run_command("evaluate", "--model-version", str(v1), "--data", str(tmp_path / "data"))
    assert "MAE (years)" in output and "within ±10 y" in output
    assert "Error by decade" in output and "Logged to MLflow run" in output

    # evaluate: the evaluation dataset by default
    output = run_command("evaluate", "--model-version", str(v1), "--no-log")
    assert "evaluation dataset" in output and "MAE (years)" in output


@pytest.mark.slow
def test_train_trains_its_folds_itself_even_with_a_broker_configured(model_name, labelled, settings):
    # with a broker the services would hand the folds to the training workers and return at once; `train` waits
    settings.CELERY_TASK_ALWAYS_EAGER = False

    output = run_command("train", "--set", *TINY)

    run = TrainingRun.objects.get()
    assert run.status == TrainingRun.Status.SUCCEEDED and "now in production" in output
    assert not run.folds.exists(), "trained in this process, not queued"


def test_train_with_an_unknown_config_key_fails_naming_it(model_name, labelled):
    with pytest.raises(CommandError, match="epohcs"):
        run_command("train", "--set", "epohcs=3")
    assert not TrainingRun.objects.exists()


def test_train_fails_non_zero_without_enough_labels(model_name):
    with pytest.raises(CommandError, match="failed"):
        run_command("train", "--set", *TINY)

    run = TrainingRun.objects.get()
    assert run.status == TrainingRun.Status.FAILED and "not enough labelled coins" in run.error


def test_retrain_fails_non_zero_when_the_run_fails(model_name):
    with pytest.raises(CommandError, match="failed"):
        run_command("retrain", "--set", *TINY)


def test_retrain_refuses_while_another_run_holds_the_lock(model_name, labelled):
    from django.utils import timezone

    TrainingRun.objects.create(config={}, status=TrainingRun.Status.RUNNING, heartbeat_at=timezone.now())

    with pytest.raises(CommandError, match="only one runs at a time"):
        run_command("retrain", "--set", *TINY)


def test_evaluate_an_unknown_version_fails(model_name):
    with pytest.raises(CommandError, match="no version 99"):
        run_command("evaluate", "--model-version", "99")


# --- bootstrap_demo ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bootstrap_demo_sets_everything_up_once(model_name, settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("COINSITE_BOOTSTRAP_COINS", "24")
    monkeypatch.setenv("COINSITE_BOOTSTRAP_SET", " ".join(TINY))
    monkeypatch.delenv("COINSITE_DEMO_PASSWORD", raising=False)

    output = run_command("bootstrap_demo")

    users = {u.username: u for u in get_user_model().objects.filter(username__in=["collector", "curator", "owner"])}
    assert set(users) == {"collector", "curator", "owner"}
    assert users["curator"].is_staff and users["owner"].is_staff and not users["collector"].is_staff
    assert users["owner"].has_perm("registry.promote_modelversion")
    assert users["curator"].has_perm("predictions.review_coin")
    credentials = (tmp_path / "demo-credentials.txt").read_text()
    for line in credentials.splitlines():
        username, _role, password = line.split("\t")
        assert users[username].check_password(password)
        assert password in output, "printed once when created"
    assert Coin.objects.filter(source=Coin.Source.DEMO, owner=users["collector"]).count() == 24
    assert tracking.get_alias_version(model_name, "production") is not None
    assert "training the first one" in output and "roughly" in output
    assert list(TrainingRun.objects.values_list("origin", flat=True)) == ["bootstrap"]  # not "schedule"
    runs, coins, promotions = TrainingRun.objects.count(), Coin.objects.count(), Promotion.objects.count()

    again = run_command("bootstrap_demo")

    assert "exist already" in again and "not training" in again
    assert (TrainingRun.objects.count(), Coin.objects.count(), Promotion.objects.count()) == (runs, coins, promotions)
    assert (tmp_path / "demo-credentials.txt").read_text() == credentials


def test_bootstrap_demo_uses_the_given_password_and_does_not_write_it(model_name, settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("COINSITE_DEMO_PASSWORD", "a-long-demo-password")

    run_command("bootstrap_demo", "--coins", "0", "--no-train")

    assert get_user_model().objects.get(username="owner").check_password("a-long-demo-password")
    assert "a-long-demo-password" not in (tmp_path / "demo-credentials.txt").read_text()


# --- wait_for_mlflow -----------------------------------------------------------------------------------------------


def test_wait_for_mlflow_returns_at_once_for_a_local_store(settings):
    settings.MLFLOW_TRACKING_URI = "sqlite:///nowhere.db"

    assert "nothing to wait for" in run_command("wait_for_mlflow", "--timeout", "0")


def test_wait_for_mlflow_waits_for_a_server_that_answers(settings):
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{server.server_port}"
        assert "is up" in run_command("wait_for_mlflow", "--timeout", "5")
    finally:
        server.shutdown()


def test_wait_for_mlflow_gives_up_after_the_timeout(settings):
    with socket_bound() as port:
        settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{port}"
        with pytest.raises(CommandError, match="did not answer"):
            run_command("wait_for_mlflow", "--timeout", "1", "--interval", "0.2")


class socket_bound:
    """A port nobody listens on (bound, not listening: connections are refused)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()


# --- pretrain -------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_pretrain_writes_the_base_with_its_lineage_and_logs_it_to_mlflow(tmp_path, settings):
    out = tmp_path / "base.pt"

    output = run_command(
        "pretrain",
        "--set",
        "count=12",
        "negatives=6",
        "steps=2",
        "eval_count=6",
        "eval_every=2",
        "batch_size=4",
        "negative_pairs=2",
        "--out",
        str(out),
    )

    state, train_config = load_base_state(out)
    assert "trunk.body.0.0.weight" in state and train_config["head"] == "reader"
    lineage = json.loads(out.with_suffix(".json").read_text())
    assert lineage["generator_version"] and lineage["code_commit"]
    manifest = PretrainConfig.load()
    assert lineage["manifest"]["count"] == 12 and lineage["manifest"]["seed"] == manifest.seed
    assert lineage["manifest"]["assorted_share"] == manifest.assorted_share
    assert (lineage["resumed_from"] is not None) == manifest.resume  # the base it continued from, kept
    assert {"exact", "mae", "baseline_mae"} <= set(lineage["metrics"])
    assert "base reader written to" in output
    experiment = mlflow.get_experiment_by_name("coin-year-base")
    assert experiment.artifact_location.startswith(Path(settings.MLFLOW_ARTIFACT_ROOT).resolve().as_uri())
    runs = mlflow.search_runs([experiment.experiment_id], output_format="list")
    assert runs and runs[0].data.params["manifest.count"] == "12"


@pytest.mark.parametrize(
    ("served", "says"),
    [(1.0, "serves the fold models averaged into one"), (0.0, "serves the ensemble of the fold models")],
)
def test_the_train_summary_says_how_the_version_combines_its_folds(served, says):
    from training.management.commands.train import cv_summary

    text = cv_summary({"soup_served": served, "soup_holdout_exact": 0.974, "folds_ensemble_holdout_exact": 0.967})

    assert f"{says}: exact on the holdout 97.4% averaged, 96.7% ensemble" in text
    assert "serves" not in cv_summary({"mae": 1.0})
