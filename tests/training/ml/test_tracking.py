"""training.ml.tracking on a real MLflow store (a temporary SQLite file and artifact folder).

One tiny model (32 px, 2 folds, 2 epochs, 12 synthetic coins) is trained once per module through the real
TrainingTracker; the tests read what it left in MLflow. The store is this module's own, and the process-wide MLflow
configuration is restored afterwards so other test modules keep theirs.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.processes import stop_group
from training.ml import images, synthetic, tracking
from training.ml.config import TrainConfig, seed_regression
from training.ml.data import CoinSample
from training.ml.kfold import FitResult, fit
from training.ml.tracking import loading, store

MODEL = "coin-year"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- shared helpers (test_pyfunc.py imports them) ----------------------------------------------------------------


def tiny_config(**overrides) -> TrainConfig:
    """The smallest config that still trains: 32 px, 2 folds, 2 epochs, no early stop, no calibration holdout."""
    values = dict(
        image_size=32,
        epochs=2,
        folds=2,
        batch_size=2,  # more steps: the BN running statistics leave their init, so the years differ per coin
        head_hidden=16,
        dropout=0.0,
        augment=False,
        patience=0,
        calibration_share=0.0,
        lr=0.003,
        seed=3,
    )
    values.update(overrides)
    return seed_regression(**values)


def coin_photos(count: int = 12, seed: int = 5) -> list[tuple[bytes, bytes, int]]:
    return list(synthetic.iter_coins(count, seed, size=64))


def samples_of(photos) -> list[CoinSample]:
    return [CoinSample(front=f, back=b, year=y, key=f"coin-{i}") for i, (f, b, y) in enumerate(photos)]


def manifest_of(photos) -> list[dict]:
    return [
        {
            "key": f"coin-{i}",
            "front_sha256": hashlib.sha256(f).hexdigest(),
            "back_sha256": hashlib.sha256(b).hexdigest(),
            "year": y,
            "weight": 1.0,
        }
        for i, (f, b, y) in enumerate(photos)
    ]


@dataclass
class Trained:
    """What the module's one training run left behind."""

    store: Path
    tracking_uri: str
    config: TrainConfig
    photos: list
    manifest: list
    result: FitResult
    run_id: str
    model_uri: str
    version: int
    summary: dict


def _snapshot_mlflow():
    """The process-wide MLflow configuration, to put back after this module's own store."""
    import dataclasses

    import mlflow

    return mlflow.get_tracking_uri(), dataclasses.replace(store.state)


def _restore_mlflow(snapshot) -> None:
    import mlflow

    uri, state = snapshot
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    store.state.__dict__.update(state.__dict__)


def train_and_register(store: Path, *, run_name: str = "tiny") -> Trained:
    """Configure a fresh store in ``store``, train the tiny model through the tracker, log and register it."""
    tracking_uri = f"sqlite:///{store / 'mlflow.db'}"
    tracking.configure(tracking_uri, artifact_root=str(store / "artifacts"))
    config = tiny_config()
    photos = coin_photos()
    manifest = manifest_of(photos)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; a 32 px model does not need more (and 1 thread is reproducible)
    try:
        with tracking.TrainingTracker(config, run_name=run_name, tags={"trigger": "test"}) as tracker:
            result = fit(config, samples_of(photos), progress=False, on_epoch=tracker.on_epoch)
            summary = tracker.log_result(result, manifest, extra_metrics={"train_coins": len(photos)})
            model_uri = tracker.log_model(result)
            version = tracker.register(MODEL)
    finally:
        torch.set_num_threads(threads)
    return Trained(store, tracking_uri, config, photos, manifest, result, tracker.run_id, model_uri, version, summary)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    snapshot = _snapshot_mlflow()
    try:
        yield train_and_register(tmp_path_factory.mktemp("mlflow-registry"))
    finally:
        _restore_mlflow(snapshot)


def in_memory_years(trained: Trained, photos) -> np.ndarray:
    """[year, low, high] of the fit's own ensemble on the evaluation transform: the reference for every other path."""
    front, back = images.preprocess_batch([(f, b) for f, b, _ in photos], trained.config)
    with torch.inference_mode():
        return trained.result.ensemble()(front, back).numpy().astype(np.float64)


# --- the tracker -------------------------------------------------------------------------------------------------


def test_tracker_logs_config_params_and_ends_finished(trained):
    run = store.client().get_run(trained.run_id)

    assert run.info.status == "FINISHED"
    assert run.data.params == {k: str(v) for k, v in trained.config.to_dict().items()}
    assert run.data.tags["trigger"] == "test"


def test_tracker_logs_each_fold_in_a_nested_run_with_per_epoch_metrics(trained):
    client = store.client()
    runs = client.search_runs(
        [store.state.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{trained.run_id}'"
    )

    assert sorted(r.info.run_name for r in runs) == ["fold-1", "fold-2"]
    for run in runs:
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "val_mae")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2]
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
        assert run.data.metrics["mae"] > 0  # the fold's final metrics, beside the curves


def test_tracker_logs_summary_baseline_interval_and_flat_fold_metrics(trained):
    metrics = store.client().get_run(trained.run_id).data.metrics
    result = trained.result

    assert metrics["mae"] == pytest.approx(result.metrics["mae"])
    assert metrics["mae_std"] == pytest.approx(result.metrics["mae_std"])
    assert metrics["baseline_mae"] == pytest.approx(result.baseline_metrics["mae"])
    assert metrics["interval_coverage"] == pytest.approx(result.interval_coverage)
    assert metrics["fold_1_mae"] == pytest.approx(result.fold_metrics[0]["mae"])
    assert metrics["fold_2_r2"] == pytest.approx(result.fold_metrics[1]["r2"], nan_ok=True)
    assert metrics["train_coins"] == 12
    assert metrics["dataset_size"] == 12


def test_tracker_logs_metrics_json_plots_and_manifest(trained, tmp_path):
    artifacts = tracking.list_artifacts(trained.run_id)

    for name in (
        tracking.METRICS_JSON,
        tracking.MANIFEST_JSON,
        tracking.LEARNING_CURVES_PNG,
        tracking.PRED_VS_TRUE_PNG,
        tracking.ERROR_BY_DECADE_PNG,
        "config.json",
    ):
        assert name in artifacts
    for png in (tracking.LEARNING_CURVES_PNG, tracking.PRED_VS_TRUE_PNG, tracking.ERROR_BY_DECADE_PNG):
        data = Path(tracking.download_artifact(trained.run_id, png, dst_path=str(tmp_path))).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    manifest = json.loads(Path(tracking.download_artifact(trained.run_id, tracking.MANIFEST_JSON)).read_text())
    assert manifest == trained.manifest
    metrics_json = json.loads(Path(tracking.download_artifact(trained.run_id, tracking.METRICS_JSON)).read_text())
    assert metrics_json == trained.summary
    assert len(metrics_json["folds"]) == 2
    assert metrics_json["summary"]["baseline_mae"] == pytest.approx(trained.result.baseline_metrics["mae"])
    assert sum(metrics_json["count_by_decade"].values()) == len(trained.result.oof_true)


# --- registration and aliases ------------------------------------------------------------------------------------


def test_first_registered_version_becomes_production(trained):
    assert trained.version == 1
    assert tracking.get_alias_version(MODEL) == 1
    info = tracking.version_info(MODEL, 1)
    assert info["run_id"] == trained.run_id
    assert info["aliases"] == ["production"]
    assert info["metrics"]["mae"] == pytest.approx(trained.result.metrics["mae"])
    assert info["creation_time"].tzinfo is not None


def test_second_registration_gets_version_2_and_leaves_production(trained):
    run_id, version = tracking.log_training(trained.result, trained.manifest, run_name="second")

    assert store.client().get_run(run_id).info.status == "FINISHED"
    assert tracking.version_info(MODEL, version)["run_id"] == run_id
    assert version == 2
    assert tracking.get_alias_version(MODEL) == 1
    assert tracking.version_info(MODEL, 2)["aliases"] == []
    assert tracking.list_versions(MODEL) == [1, 2]


def test_failed_training_ends_failed_and_registers_nothing(trained):
    name = "coin-year-failed"
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.TrainingTracker(trained.config, run_name="fails") as tracker:
            tracker.on_epoch(1, 1, {"train_loss": 0.5, "val_mae": 40.0})
            raise RuntimeError("boom")

    client = store.client()
    assert client.get_run(tracker.run_id).info.status == "FAILED"
    assert "boom" in client.get_run(tracker.run_id).data.tags["error"]
    assert client.get_run(tracker.fold_run_id(1)).info.status == "FAILED"
    assert tracking.get_alias_version(name) is None
    assert tracking.list_versions(name) == []


def test_failure_after_registration_rolls_the_version_back(trained):
    name = "coin-year-rollback"
    with pytest.raises(RuntimeError, match="after register"):
        with tracking.TrainingTracker(trained.config, run_name="fails-late") as tracker:
            tracker.log_model(trained.result)
            assert tracker.register(name) == 1
            assert tracking.list_versions(name) == [1]
            assert tracking.get_alias_version(name) is None  # Production only once the run has succeeded
            raise RuntimeError("after register")

    assert store.client().get_run(tracker.run_id).info.status == "FAILED"
    assert tracking.get_alias_version(name) is None
    assert tracking.list_versions(name) == []  # the version went with its failed run


def test_end_run_closes_a_dead_workers_run_and_drops_its_unaliased_version(trained):
    # given a worker that registered a version and died before its tracker could end the run
    name = "coin-year-dead"
    tracker = tracking.TrainingTracker(trained.config, run_name="dies")
    tracker.start()
    tracker.on_epoch(1, 1, {"train_loss": 0.5})
    tracker.log_model(trained.result)
    version = tracker.register(name)

    # when the reaper ends its run
    removed = tracking.end_run(tracker.run_id, "FAILED", error="worker died", model_name=name)

    # then the run and its fold run are FAILED and the version is gone
    client = store.client()
    assert removed == [version]
    assert client.get_run(tracker.run_id).info.status == "FAILED"
    assert client.get_run(tracker.fold_run_id(1)).info.status == "FAILED"
    assert client.get_run(tracker.run_id).data.tags["error"] == "worker died"
    assert tracking.list_versions(name) == []
    assert tracking.end_run(tracker.run_id, "FAILED", model_name=name) == []  # idempotent


def test_alias_helpers_move_and_delete_aliases(trained):
    tracking.set_alias(MODEL, "candidate", trained.version)
    assert tracking.get_alias_version(MODEL, "candidate") == trained.version

    tracking.delete_alias(MODEL, "candidate")
    tracking.delete_alias(MODEL, "candidate")  # absent: no error

    assert tracking.get_alias_version(MODEL, "candidate") is None
    assert tracking.get_alias_version("no-such-model") is None
    tracking.delete_alias("no-such-model", "production")


# --- loading for inference -------------------------------------------------------------------------------------


def test_load_predictor_gives_the_in_memory_ensembles_years(trained, tmp_path):
    photos = trained.photos[:6]
    expected = in_memory_years(trained, photos)
    front, back = images.preprocess_batch([(f, b) for f, b, _ in photos], trained.config)

    loaded = tracking.load_predictor(MODEL, trained.version, cache_dir=str(tmp_path))
    output = loaded.predict_pairs(front, back)

    assert loaded.version == trained.version and loaded.backend == "onnx"
    assert loaded.config == trained.config
    assert output.shape == (6, 3)
    np.testing.assert_allclose(output, expected, atol=0.05)
    assert [int(round(y)) for y in output[:, 0]] == [int(round(y)) for y in expected[:, 0]]


def test_load_predictor_downloads_a_version_once(trained, tmp_path):
    first = tracking.load_predictor(MODEL, trained.version, cache_dir=str(tmp_path))
    marker = Path(first.path) / loading.COMPLETE_MARKER
    stamp = marker.stat().st_mtime_ns

    started = time.perf_counter()
    second = tracking.load_predictor(MODEL, trained.version, cache_dir=str(tmp_path))
    seconds = time.perf_counter() - started

    assert second.path == first.path
    assert marker.stat().st_mtime_ns == stamp
    assert [p.name for p in Path(first.path).parent.iterdir()] == [Path(first.path).name]  # no partial left
    assert seconds < 5


def test_onnx_runtime_and_pytorch_fallback_give_the_same_years(trained, tmp_path):
    photos = trained.photos
    front, back = images.preprocess_batch([(f, b) for f, b, _ in photos], trained.config)

    onnx = tracking.load_predictor(MODEL, trained.version, cache_dir=str(tmp_path), backend="onnx")
    fallback = tracking.load_predictor(MODEL, trained.version, cache_dir=str(tmp_path), backend="torch")

    assert (onnx.backend, fallback.backend) == ("onnx", "torch")
    np.testing.assert_allclose(onnx.predict_pairs(front, back), fallback.predict_pairs(front, back), atol=0.05)


# --- evaluation logging -----------------------------------------------------------------------------------------


def test_log_evaluation_into_a_versions_run_and_into_a_new_run(trained):
    from training.ml import plots

    comparison = {"candidate": {"mae": 9.5, "mae_by_decade": {"1870": 4.0}}, "production": {"mae": 11.0}}
    figure = plots.error_by_decade([1871, 1905], [1875, 1900])

    run_id = tracking.log_evaluation(
        trained.version,
        comparison,
        {"evaluation/comparison.json": comparison, "evaluation/error_by_decade.png": figure},
    )
    new_run = tracking.log_evaluation(None, {"mae": 3.0}, {"report.json": {"ok": True}}, run_name="eval")

    client = store.client()
    assert run_id == trained.run_id
    metrics = client.get_run(run_id).data.metrics
    assert metrics["candidate_mae"] == 9.5 and metrics["candidate_mae_by_decade_1870"] == 4.0
    assert {"evaluation/comparison.json", "evaluation/error_by_decade.png"} <= set(tracking.list_artifacts(run_id))
    saved = json.loads(Path(tracking.download_artifact(run_id, "evaluation/comparison.json")).read_text())
    assert saved == comparison
    assert client.get_run(new_run).info.status == "FINISHED"
    assert client.get_run(new_run).data.metrics == {"mae": 3.0}
    assert tracking.list_artifacts(new_run) == ["report.json"]


# --- a tracking server --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s")


@pytest.mark.slow
def test_tracker_and_loading_work_against_an_mlflow_tracking_server(trained, tmp_path):
    port = free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "wb"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    snapshot = _snapshot_mlflow()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", server, timeout=120)
        tracking.configure(f"http://127.0.0.1:{port}", artifact_root=str(tmp_path / "ignored"))
        with tracking.TrainingTracker(trained.config, run_name="on-server") as tracker:
            tracker.on_epoch(1, 1, {"train_loss": 0.4, "val_mae": 30.0})
            tracker.log_result(trained.result, trained.manifest)
            tracker.log_model(trained.result)
            version = tracker.register(MODEL)

        assert version == 1 and tracking.get_alias_version(MODEL) == 1
        assert tracking.METRICS_JSON in tracking.list_artifacts(tracker.run_id)
        loaded = tracking.load_predictor(MODEL, version, cache_dir=str(tmp_path / "cache"))
        front, back = images.preprocess_batch([(f, b) for f, b, _ in trained.photos[:3]], trained.config)
        np.testing.assert_allclose(
            loaded.predict_pairs(front, back), in_memory_years(trained, trained.photos[:3]), atol=0.05
        )
        assert not (tmp_path / "ignored").exists()  # the server owns the artifact location
    finally:
        _restore_mlflow(snapshot)
        stop_group(server)


def test_processes_creating_a_fresh_sqlite_store_at_once_all_succeed(tmp_path):
    # given 4 processes (gunicorn workers on a fresh embedded default), each past its imports, released together
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    start_at = time.time() + 15
    code = (
        "import sys, time; from training.ml.tracking.store import configure; "
        f"time.sleep(max(0, {start_at} - time.time())); "
        f"configure({uri!r}, artifact_root={str(tmp_path / 'artifacts')!r}, experiment='race')"
    )
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    processes = [
        subprocess.Popen([sys.executable, "-c", code], cwd=root, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]

    # when they create the store's tables at once, then every one succeeds
    outcomes = [(process.wait(timeout=180), process.stderr.read()[-1500:]) for process in processes]
    assert [code for code, _ in outcomes] == [0] * 4, outcomes
