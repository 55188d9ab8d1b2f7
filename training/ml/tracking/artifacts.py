"""Files of a training run: the names runs write (metrics, manifest, plots), writing values as files, reading back.

The names themselves are in names.py (no MLflow import), where the admin reads them and runs.py writes under them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from training.ml.tracking import store
from training.ml.tracking.values import jsonable


def write_artifact(folder: Path, name: str, value: Any) -> Path:
    """Write one artifact value to folder/name: a matplotlib Figure as PNG, bytes as they are, an existing file
    copied, anything else as JSON."""
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(value, "savefig"):
        value.savefig(target, format=target.suffix.lstrip(".") or "png", dpi=110)
    elif isinstance(value, (bytes, bytearray)):
        target.write_bytes(bytes(value))
    elif isinstance(value, Path) or (isinstance(value, str) and not name.endswith(".json") and Path(value).is_file()):
        shutil.copyfile(value, target)
    elif isinstance(value, str) and not name.endswith(".json"):
        target.write_text(value, encoding="utf-8")
    else:
        target.write_text(json.dumps(jsonable(value), indent=2, sort_keys=True), encoding="utf-8")
    return target


def log_artifact_values(client: MlflowClient, run_id: str, artifacts: Mapping[str, Any]) -> list[str]:
    """Write each value (see write_artifact) and log it under its name's folder; returns the names logged."""
    with tempfile.TemporaryDirectory(prefix="coinsite-artifacts-") as tmp:
        names = []
        for name, value in artifacts.items():
            path = write_artifact(Path(tmp), name, value)
            parent = str(Path(name).parent)
            client.log_artifact(run_id, str(path), artifact_path=None if parent in ("", ".") else parent)
            names.append(name)
        return names


def list_artifacts(run_id: str, path: str = "") -> list[str]:
    """Relative paths of every artifact file of a run under ``path`` (recursive)."""
    mlflow_client = store.client()
    out: list[str] = []
    stack = [path or None]
    while stack:
        current = stack.pop()
        for item in mlflow_client.list_artifacts(run_id, current):
            if item.is_dir:
                stack.append(item.path)
            else:
                out.append(item.path)
    return sorted(out)


def download_artifact(run_id: str, path: str, *, dst_path: str | None = None) -> str:
    """Local path of one artifact of a run (downloaded into dst_path or a fresh temp folder)."""
    dst = dst_path or tempfile.mkdtemp(prefix="coinsite-artifact-")
    return store.client().download_artifacts(run_id, path, dst)
