"""What a registered version is made of: the model's artifact files, the code shipped with it, its requirements.

The registered model is a models-from-code pyfunc (training/ml/pyfunc.py) carrying the ONNX export of the fold
ensemble, the fold state dicts (PyTorch fallback), the config and the interval calibration, plus a copy of the
``training`` package (``training/__init__.py`` and ``training/ml``, this package included), so
`mlflow models serve` runs exactly the preprocessing used in training without this repository.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib.metadata
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import AnyType

from training.ml import ensemble as ensemble_mod
from training.ml.tracking.values import as_number, jsonable

MODEL_ARTIFACT_NAME = "model"
PYFUNC_PATH = Path(__file__).resolve().parents[1] / "pyfunc.py"
# The repository's training/ (a Django app; only its ml/ ships with a model).
TRAINING_PACKAGE_DIR = Path(__file__).resolve().parents[2]

# File names of the model's artifacts (keys are how pyfunc.py and loading.model_files find them).
ARTIFACT_FILES = {
    "onnx": "ensemble.onnx",
    "onnx_int8": "ensemble_int8.onnx",  # only when the int8 graph answered as float32 (training.ml.quantize)
    "fold_states": "fold_states.pt",  # the K fold models (fine-tuning starts from them)
    "served_states": "served_states.pt",  # only when the version serves other weights: [the folds averaged]
    "config": "config.json",
    "calibration": "calibration.json",
}


def write_model_artifacts(fit_result: Any, folder: Path) -> dict[str, Path]:
    """ONNX export of the served model (and its int8 graph when it agrees), the fold state dicts (and the served
    ones when they differ: the averaged reader), config.json and calibration.json into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    config = fit_result.config
    paths = {key: folder / name for key, name in ARTIFACT_FILES.items()}
    ensemble = fit_result.ensemble()
    ensemble.eval()
    ensemble_mod.export_onnx(ensemble, paths["onnx"], config)
    int8 = _quantize(fit_result, paths.pop("onnx_int8"), paths["onnx"])
    if int8 is not None and int8.accepted:
        paths["onnx_int8"] = folder / ARTIFACT_FILES["onnx_int8"]
    torch.save(_cpu_states(fit_result.fold_states), paths["fold_states"])
    served = getattr(fit_result, "served_states", None)
    if served is not None:
        torch.save(_cpu_states(served), paths["served_states"])
    else:
        paths.pop("served_states")
    paths["config"].write_text(json.dumps(jsonable(config.to_dict()), indent=2, sort_keys=True), encoding="utf-8")
    calibration = calibration_of(fit_result)
    if int8 is not None:
        calibration["int8"] = int8.to_dict()
    paths["calibration"].write_text(json.dumps(jsonable(calibration), indent=2), encoding="utf-8")
    return paths


def _cpu_states(states: Any) -> list[dict[str, torch.Tensor]]:
    return [{k: v.detach().cpu() for k, v in state.items()} for state in states]


def _quantize(fit_result: Any, out: Path, fp32: Path) -> Any:
    """The int8 graph from the run's own photos (half for the ranges, half for the agreement check), or None when
    the config does not ask for it or the run kept no photos."""
    from training.ml.quantize import quantize_onnx  # lazy: onnxruntime is optional where versions are only loaded

    photos = getattr(fit_result, "quantization_photos", None)
    if not fit_result.config.serve_int8 or photos is None or len(photos[0]) < 2:
        return None
    front, back = photos
    half = len(front) // 2
    calibration = fit_result.calibration
    return quantize_onnx(
        fp32,
        out,
        fit_front=front[:half],
        fit_back=back[:half],
        check_front=front[half:],
        check_back=back[half:],
        coin_threshold=float(getattr(calibration, "coin_threshold", 0.0) or 0.0),
        unreadable_below=float(getattr(calibration, "read_threshold", 0.0) or 0.0),
    )


def calibration_of(fit_result: Any) -> dict[str, Any]:
    """What the interval needs besides the weights: the fitted IntervalCalibration and how well it covered."""
    calibration = fit_result.calibration
    fields = dataclasses.asdict(calibration) if dataclasses.is_dataclass(calibration) else dict(calibration)
    return {
        "calibration": jsonable(fields),
        "interval_level": float(fit_result.config.interval_level),
        "interval_halfwidth": as_number(getattr(fit_result, "interval_halfwidth", None)),
        "interval_coverage": as_number(getattr(fit_result, "interval_coverage", None)),
        "interval_coverage_source": getattr(fit_result, "interval_coverage_source", None),
    }


def stage_training_package(folder: Path) -> Path:
    """A copy of the ``training`` package as the served model needs it: training/__init__.py and training/ml/**/*.py.

    Only ml/ ships (no Django app modules, no caches, no tests), so `import training.ml.images` works in
    `mlflow models serve` and importing ``training`` there cannot pull in Django.
    """
    target = folder / "training"
    (target / "ml").mkdir(parents=True, exist_ok=True)
    (target / "__init__.py").write_text("", encoding="utf-8")
    source = TRAINING_PACKAGE_DIR / "ml"
    for path in sorted(source.rglob("*.py")):
        if "__pycache__" in path.parts or path.name.startswith("test_"):
            continue
        dest = target / "ml" / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    init = target / "ml" / "__init__.py"
    if not init.exists():
        init.write_text("", encoding="utf-8")
    return target


def pip_requirements() -> list[str]:
    """Pinned requirements of the served model (given explicitly: MLflow's inference would load the model in a
    subprocess just to guess them)."""
    wanted = [
        "mlflow",
        "torch",
        "torchvision",
        "onnxruntime",
        "rapidocr-onnxruntime",  # the second reader of the date (training.ml.ocr); its weights ship in the wheel
        "numpy",
        "pillow",
        "pillow-heif",
        "pybase64",
        "pydantic",
        "PyYAML",
        "tqdm",
    ]
    out = []
    for name in wanted:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        out.append(f"{name}=={version.split('+')[0]}")
    return out


def model_signature() -> ModelSignature:
    """Two required columns (the photos' base64) and a ``details`` parameter (boolean, default false).

    Declared, not inferred from predict's type hints: a type-hinted signature makes `mlflow models serve` take only the
    ``inputs`` body, and the parameter must be in the signature, or MLflow drops ``params={"details": True}`` with a
    warning ("Unrecognized params ... are ignored") before predict sees it. The columns are typed Any, not string:
    for a string column MLflow's scoring server copies each value through a numpy unicode array (4 bytes a
    character), and an ``inputs`` body of one 12 MP pair (2 x 6.4 MB of base64) took 264 ms to parse against 79 ms
    as Any and 112 ms with the type-hinted signature (mlflow 3.17's scoring_server.invocations with a model that
    only counts its rows, best of 5, 2-core machine under load). In process, a list of dicts now becomes a DataFrame
    of pandas' Arrow strings first: about 60 ms more per 12 MP pair than the type-hinted signature (no difference at
    600 px). predict checks that each value is a string and names the row and side that is not.
    """
    return ModelSignature(
        inputs=Schema([ColSpec(AnyType(), "front_image_base64"), ColSpec(AnyType(), "back_image_base64")]),
        params=ParamSchema([ParamSpec("details", "boolean", False)]),
    )


def default_input_example() -> list[dict[str, str]]:
    """One small synthetic coin as the Model-Serving input example (also gives MLflow a serving example)."""
    from training.ml import synthetic  # lazy: only registering needs a coin; loading a served model imports this module

    front, back = synthetic.generate_coin_jpegs(1900, 7, size=64)
    return [
        {
            "front_image_base64": base64.b64encode(front).decode("ascii"),
            "back_image_base64": base64.b64encode(back).decode("ascii"),
        }
    ]
