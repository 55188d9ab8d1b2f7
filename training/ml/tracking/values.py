"""Plain values for MLflow and JSON: metric numbers, flat metric names, JSON-ready trees, content hashes.

Shared by runs (metrics and metrics.json), packaging (config.json, calibration.json) and artifacts: one conversion,
so a number logged as a metric and the same number in a JSON artifact never disagree.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def now_ms() -> int:
    """Wall-clock milliseconds, the timestamp MLflow metrics carry."""
    return int(time.time() * 1000)


def as_number(value: Any) -> float | None:
    """A float for MLflow, or None for anything that is not a real number (bools count as numbers)."""
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # 0-d numpy array / torch tensor
        try:
            return float(value.item())
        except (TypeError, ValueError):
            return None
    return None


_METRIC_NAME_BAD = re.compile(r"[^0-9A-Za-z_\-. /]")


def metric_name(name: str) -> str:
    """``name`` with the characters MLflow refuses in metric keys replaced by ``_``."""
    return _METRIC_NAME_BAD.sub("_", str(name))


def flatten_metrics(metrics: Mapping[str, Any] | None, *, prefix: str = "") -> dict[str, float]:
    """{"a": 1, "b": {"c": 2}} -> {"a": 1.0, "b_c": 2.0}; non-numeric values are left out."""
    out: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_metrics(value, prefix=f"{name}_"))
            continue
        converted = as_number(value)
        if converted is not None:
            out[metric_name(name)] = converted
    return out


def jsonable(value: Any) -> Any:
    """Numbers, arrays, tensors, paths and dataclasses to plain JSON; NaN/inf to None (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if hasattr(value, "detach") and hasattr(value, "tolist"):  # torch tensor
        return jsonable(value.detach().cpu().tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    return value if value is None or isinstance(value, str) else str(value)


def config_dict(config: Any) -> dict[str, Any]:
    """A TrainConfig or a mapping as a plain dict (the tracker logs either as params)."""
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "to_dict"):
        return dict(config.to_dict())
    raise TypeError(f"config must be a mapping or a TrainConfig, got {type(config).__name__}")


def manifest_sha256(manifest: Sequence[Mapping[str, Any]]) -> str:
    """Content hash of a dataset manifest (order-sensitive, key-order-insensitive)."""
    canonical = json.dumps(jsonable(list(manifest)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
