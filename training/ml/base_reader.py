"""The base date reader's weights file: where it lives, writing it (``manage.py pretrain``) and reading it (every
model built with init_from "base").

Apart from pretrain.py so that loading a served model (model.py) does not import the coin generator, the negatives
and the pretraining loop that pretrain.py needs to make the weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from training.ml.reader import DateReaderNet

BASE_DIR = Path(__file__).resolve().parents[2]
BASE_WEIGHTS = BASE_DIR / "training" / "ml" / "base" / "date_reader.pt"
BASE_LINEAGE = BASE_WEIGHTS.with_suffix(".json")


def save_base(net: DateReaderNet, lineage: dict[str, Any], path: Path = BASE_WEIGHTS) -> Path:
    """Write the base weights in half precision (under 1 MB) and the lineage JSON beside them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    torch.save({"state": state, "train_config": lineage["train_config"]}, path)
    path.with_suffix(".json").write_text(json.dumps(lineage, indent=1, default=str))
    return path


def load_base_state(path: Path = BASE_WEIGHTS) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The base reader's float32 state dict and the TrainConfig fields it was trained with."""
    if not path.is_file():
        raise FileNotFoundError(f"no base date reader at {path}: run `python manage.py pretrain`")
    data = torch.load(path, map_location="cpu", weights_only=True)
    return {k: (v.float() if v.is_floating_point() else v) for k, v in data["state"].items()}, data["train_config"]
