"""Loading a registered version for inference: download once, build the ensemble predictor, ready to predict.

Inference processes load a version through load_predictor(): the files of a version are downloaded once into a
cache keyed by name, version AND the logged model's identity (two stores with a "version 1" never share files), so
swapping to a version seen before costs only the ONNX session creation. predictor_from_files() is also what
pyfunc.py calls, so the Django workers and `mlflow models serve` build the very same model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.exceptions import MlflowException

from training.ml.config import TrainConfig
from training.ml.ensemble import CoinYearEnsemble, EnsemblePredictor
from training.ml.tracking import store
from training.ml.tracking.names import DEFAULT_MODEL_NAME
from training.ml.tracking.packaging import ARTIFACT_FILES

BACKENDS = ("auto", "onnx", "onnx-int8", "torch")
# Written last into a downloaded version's folder: a folder without it is a download that did not finish.
COMPLETE_MARKER = ".complete"


@dataclass
class LoadedModel:
    """A registered version ready for inference: its config (the preprocessing to apply) and the predictor."""

    version: int
    config: TrainConfig
    predictor: Any  # training.ml.ensemble.EnsemblePredictor
    name: str = DEFAULT_MODEL_NAME
    backend: str = "onnx"
    path: str = ""
    calibration: dict = field(default_factory=dict)

    def predict_pairs(self, front: torch.Tensor, back: torch.Tensor) -> np.ndarray:
        """(N,C,H,W) front and back tensors from images.preprocess_batch -> (N, 3+) float [year, low, high, ...]
        (a date-reading version adds coin score, read score and p(year): see ensemble.prediction_details)."""
        return np.asarray(self.predictor.predict(front, back), dtype=np.float64).reshape(len(front), -1)


def predictor_from_files(files: Mapping[str, str], *, backend: str = "auto") -> tuple[Any, TrainConfig, str, dict]:
    """Build the ensemble predictor from a model's artifact files (keys of ARTIFACT_FILES).

    backend "auto" uses ONNX Runtime when it is importable and an ONNX file exists (the int8 graph when the version
    has one: training.ml.quantize says when it is kept), else PyTorch from the fold state dicts; "onnx" (float32),
    "onnx-int8" and "torch" force one. Returns (predictor, config, backend used, calibration).
    Shared by load_predictor() and pyfunc.py, so both paths build the very same model.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    config = TrainConfig.from_dict(json.loads(Path(files["config"]).read_text(encoding="utf-8")))
    calibration = json.loads(Path(files["calibration"]).read_text(encoding="utf-8"))
    onnx_path = files.get("onnx")
    int8_path = files.get("onnx_int8")
    if backend == "auto":
        try:
            import onnxruntime  # noqa: F401  (a probe: ONNX Runtime is optional, PyTorch serves without it)
        except ImportError:
            backend = "torch"
        else:
            if int8_path and Path(int8_path).is_file():
                backend = "onnx-int8"
            elif onnx_path and Path(onnx_path).is_file():
                backend = "onnx"
            else:
                backend = "torch"
    if backend == "onnx-int8":
        if not int8_path:
            raise ValueError("this version has no int8 graph (its int8 check failed, or it predates them)")
        return _onnx_predictor(int8_path, config), config, backend, calibration
    if backend == "onnx":
        return _onnx_predictor(onnx_path, config), config, "onnx", calibration
    states = files.get("served_states", files["fold_states"])
    return _torch_predictor(states, config, calibration), config, "torch", calibration


SERVING_ORT_THREADS = 1


def _onnx_predictor(path: str, config: TrainConfig) -> Any:
    """ONNX Runtime with one intra-op thread: a served model scores one request's small batch per call, and the
    server's concurrency comes from its requests. ORT's default (a spinning thread per core) was 0.7 ms faster for a
    lone batch-1 call but burned 3.0 ms of CPU for it against 2.1 ms, CPU that concurrent requests need to decode
    their photos (measured on the 3-fold mobilenet ensemble, 2 cores)."""
    return EnsemblePredictor.from_onnx(path, config, threads=SERVING_ORT_THREADS)


def _torch_predictor(path: str, config: TrainConfig, calibration: Mapping[str, Any]) -> Any:
    """The PyTorch fallback: the fold state dicts rebuilt into the ensemble (weights_only: no pickled code)."""
    states = torch.load(path, map_location="cpu", weights_only=True)
    ensemble = CoinYearEnsemble.from_states(states, config, calibration.get("calibration"))
    return EnsemblePredictor.from_torch(ensemble)


def _default_cache_dir() -> Path:
    """Where versions are cached when the caller names no folder (the Django side always names one)."""
    return Path(tempfile.gettempdir()) / "coinsite-model-cache"


def download_version(name: str, version: int, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Local folder of a version's MLflow model, downloaded once (atomic: a half download is never used)."""
    client = store.client()
    mv = client.get_model_version(name, str(version))
    identity = hashlib.sha256(f"{mv.source}|{mv.run_id}|{getattr(mv, 'model_id', '')}".encode()).hexdigest()[:12]
    root = Path(cache_dir) if cache_dir else _default_cache_dir()
    final = root / store.safe_name(name) / f"v{int(version)}-{identity}"
    if (final / COMPLETE_MARKER).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.parent / f".partial-{uuid.uuid4().hex}"
    try:
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{int(version)}",
            dst_path=str(partial),
            tracking_uri=store.client().tracking_uri,
        )
        (partial / COMPLETE_MARKER).write_text(mv.source or "", encoding="utf-8")
        try:
            os.rename(partial, final)
        except OSError:  # another process finished first; its copy is as good as ours
            if not (final / COMPLETE_MARKER).exists():
                shutil.rmtree(final, ignore_errors=True)
                os.rename(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final


def model_files(model_dir: str | os.PathLike) -> dict[str, str]:
    """Artifact files of a downloaded model folder, by key (read from the MLmodel's pyfunc flavor)."""
    model_dir = Path(model_dir)
    meta = mlflow.models.Model.load(str(model_dir / "MLmodel"))
    declared = (meta.flavors.get("python_function") or {}).get("artifacts") or {}
    files = {}
    for key, name in ARTIFACT_FILES.items():
        entry = declared.get(key)
        relative = entry.get("path") if isinstance(entry, Mapping) else None
        candidate = model_dir / relative if relative else model_dir / "artifacts" / name
        if candidate.exists():
            files[key] = str(candidate)
    missing = {"config", "calibration"} - files.keys()
    if missing or not ({"onnx", "fold_states"} & files.keys()):
        raise MlflowException(f"model folder {model_dir} lacks artifacts: {sorted(missing) or 'weights'}")
    return files


def load_predictor(
    name: str, version: int, *, cache_dir: str | os.PathLike | None = None, backend: str = "auto"
) -> LoadedModel:
    """A registered version ready to predict (files cached under cache_dir; ONNX Runtime when available)."""
    folder = download_version(name, version, cache_dir=cache_dir)
    predictor, config, used, calibration = predictor_from_files(model_files(folder), backend=backend)
    return LoadedModel(
        version=int(version),
        config=config,
        predictor=predictor,
        name=name,
        backend=used,
        path=str(folder),
        calibration=calibration,
    )
