"""The int8 serving graph: static quantization of the ensemble's convolutions, accepted only if it answers as float32.

Why: the date reader is about 0.45 GFLOP per photo at 192 px (plain 3x3 convolutions), three fold models and two
photos per coin. Measured on the 2-core development machine (ONNX Runtime, one thread, batch 1, a retrained 3-fold
ensemble): 26.5 ms per pair in float32 against 11.4 ms in int8 (this CPU has VNNI/AMX integer units).

Only the 3x3 convolutions are quantized (QDQ format, int8 weights per output channel, uint8 activations with ranges
taken from real training photos); the 1x1 convolutions that give the locate and digit logits, the mixture over
cells, the softmax over years and the interval stay in float32. Why the logits stay: on a retrained ensemble (600
classic + 600 "northern" coins, 48 held-back photos of both mints) quantizing every convolution changed 2 years and
1 verdict of 48 (rejected by the check below); keeping the three 1x1 heads in float32 changed none, at 11.4 against
11.2 ms per pair (float32: 26.5 ms).
The quantized graph is kept only when, on photos its ranges were not fitted on, it gives the float32 graph's year
(within one year) and its verdict (coin or not, readable or not) on at least ``min_agreement`` of them; otherwise
serving stays on float32.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

ONNX_INT8_NAME = "model_int8.onnx"
MIN_AGREEMENT = 0.97


@dataclass(frozen=True)
class QuantizationCheck:
    """How the int8 graph compared with float32 on held-back photos."""

    pairs: int
    year_agreement: float  # share of pairs whose int8 year is within one year of float32's
    verdict_agreement: float  # share with the same coin / readable verdict
    max_year_difference: float
    accepted: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _verdicts(rows: np.ndarray, coin_threshold: float, unreadable_below: float) -> np.ndarray:
    if rows.shape[1] < 5:  # a regression ensemble has no scores: every input gets a year
        return np.zeros(len(rows), dtype=np.int64)
    return np.where(rows[:, 3] < coin_threshold, 2, np.where(rows[:, 4] < unreadable_below, 1, 0))


def _pointwise_convolutions(path: Path) -> list[str]:
    """Names of the graph's 1x1 convolutions (the reader's locate and digit logits)."""
    model = onnx.load(str(path))
    kernels = {init.name: list(init.dims)[2:] for init in model.graph.initializer}
    return [node.name for node in model.graph.node if node.op_type == "Conv" and kernels.get(node.input[1]) == [1, 1]]


def quantize_onnx(
    fp32_path: str | Path,
    out_path: str | Path,
    *,
    fit_front: np.ndarray,
    fit_back: np.ndarray,
    check_front: np.ndarray,
    check_back: np.ndarray,
    coin_threshold: float = 0.5,
    unreadable_below: float = 0.0,
    min_agreement: float = MIN_AGREEMENT,
) -> QuantizationCheck:
    """Write the int8 graph of ``fp32_path`` to ``out_path`` when it agrees with float32; remove it otherwise.

    fit_* are normalised photos (N, C, H, W) for the activation ranges, check_* others for the agreement check.
    """

    class _Photos(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(
                {"front": fit_front[i : i + 1].astype(np.float32), "back": fit_back[i : i + 1].astype(np.float32)}
                for i in range(len(fit_front))
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        logit_heads = _pointwise_convolutions(prepared)
        quantize_static(
            str(prepared),
            str(out_path),
            _Photos(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            op_types_to_quantize=["Conv"],
            nodes_to_exclude=logit_heads,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    feeds = {"front": check_front.astype(np.float32), "back": check_back.astype(np.float32)}
    expected = ort.InferenceSession(str(fp32_path), options, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got = ort.InferenceSession(str(out_path), options, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    difference = np.abs(got[:, 0] - expected[:, 0])
    same_verdict = _verdicts(got, coin_threshold, unreadable_below) == _verdicts(
        expected, coin_threshold, unreadable_below
    )
    year_agreement = float(np.mean(difference <= 1.0)) if len(difference) else 0.0
    verdict_agreement = float(np.mean(same_verdict)) if len(same_verdict) else 0.0
    check = QuantizationCheck(
        pairs=len(difference),
        year_agreement=year_agreement,
        verdict_agreement=verdict_agreement,
        max_year_difference=float(difference.max()) if len(difference) else 0.0,
        accepted=bool(len(difference)) and min(year_agreement, verdict_agreement) >= min_agreement,
    )
    if not check.accepted:
        out_path.unlink(missing_ok=True)
    return check
