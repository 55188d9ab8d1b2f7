"""How often upright demo coins take the second look, and what each path costs per pair (medians).

    .venv/bin/python scripts/bench_second_look.py MODEL_ARTIFACTS_DIR [--coins 200] [--repeat 15]

MODEL_ARTIFACTS_DIR is a registered version's artifacts folder (calibration.json, config.json, ensemble*.onnx,
fold_states.pt), e.g. var/model-cache/coin-year/v1-*/artifacts. Prints the first look's read-score quantiles on
fresh upright demo coins (a seed training never used), the share below each candidate threshold, and the median
time per pair of the first look alone (a sure coin) and of first + second look (a coin turned 90° without EXIF), on
ONNX Runtime (what serving uses) and on PyTorch, with whether both backends chose the same answer.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # serving_bench: make bench's inputs

from training.ml import second_look, synthetic  # noqa: E402
from training.ml.tracking.loading import predictor_from_files  # noqa: E402
from training.ml.tracking.packaging import ARTIFACT_FILES  # noqa: E402


def _turned(data: bytes, degrees: int) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).rotate(degrees, expand=True).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def _median_ms(call, repeat: int) -> float:
    call()  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--coins", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    files = {key: str(args.artifacts / name) for key, name in ARTIFACT_FILES.items()}

    predictor, config, backend, calibration = predictor_from_files(files)
    calibration = calibration.get("calibration") or calibration
    coins = list(synthetic.iter_coins(args.coins, 918_273, size=256))
    pairs = [(coin[0], coin[1]) for coin in coins]
    rows = np.concatenate([predictor.predict_bytes(pairs[i : i + 32]) for i in range(0, len(pairs), 32)])
    read, coin = rows[:, 4], rows[:, 3]
    print(
        f"{backend}: first-look read score on {len(pairs)} upright demo coins, quantiles 1/5/10/50 %:",
        np.round(np.quantile(read, [0.01, 0.05, 0.10, 0.5]), 3).tolist(),
    )
    for threshold in (0.5, 0.7, 0.8, 0.9, 0.95):
        share = float(second_look.unsure(rows, calibration, threshold).mean())
        print(
            f"  second look at read < {threshold}: {share:.1%} of upright demo coins (not a coin: {float((coin < 0.5).mean()):.1%})"
        )
    looked = second_look.look_again(predictor.predict, pairs, rows, config, calibration)
    changed = sum(note is not None for note in looked.notes)
    print(
        f"  at SURE_READ={second_look.SURE_READ}: {changed} of {len(pairs)} upright answers replaced by the second look"
    )

    sure = [pairs[int(np.argmax(read))]]
    turned = [(_turned(sure[0][0], 90), _turned(sure[0][1], 90))]
    answers = {}
    for name, backend_name in (("onnx", backend), ("torch", "torch")):
        this, *_ = predictor_from_files(files, backend=backend_name) if name == "torch" else (predictor,)
        first_ms = _median_ms(lambda p=this: p.read_bytes(sure, calibration), args.repeat)
        second_ms = _median_ms(lambda p=this: p.read_bytes(turned, calibration), max(3, args.repeat // 3))
        result = this.read_bytes(turned, calibration)
        answers[name] = (int(round(float(result.rows[0, 0]))), result.notes[0])
        print(
            f"{backend_name}: per pair, first look only (sure) {first_ms:.1f} ms; first + second look (turned 90°) "
            f"{second_ms:.1f} ms; answer {answers[name]}"
        )
    print(f"same answer on both backends: {answers['onnx'] == answers['torch']}")

    # make bench (a)'s 600 px inputs, one pair at a time: the first look alone against what serving now does
    from serving_bench.inputs import SEEDS, SIZES, photo_pairs

    bench = photo_pairs(SIZES["600px"], args.repeat, SEEDS["600px"])
    first_only = [_median_ms(lambda p=pair: predictor.predict_bytes([p]), 3) for pair in bench]
    served = [_median_ms(lambda p=pair: predictor.read_bytes([p], calibration), 3) for pair in bench]
    took = sum(second_look.unsure(predictor.predict_bytes([pair]), calibration).any() for pair in bench)
    print(
        f"600 px bench pairs ({len(bench)}): p50 first look only {statistics.median(first_only):.1f} ms, "
        f"served (with the second look when unsure) {statistics.median(served):.1f} ms; {took} took the second look"
    )


if __name__ == "__main__":
    main()
