"""The process-wide model holder, the micro-batcher and the scoring entry points (what serving a model means here).

One holder per process serves the version that MLflow alias `production` points to. A background thread checks the
alias every INFERENCE_ALIAS_POLL_SECONDS and, when it moved, loads the new version first and then swaps one reference:
a batch that started on the old model finishes on it, nothing fails in between, no restart is needed. Every prediction
carries the version that actually produced it.

Concurrent requests are batched (MicroBatcher): whatever was queued while a forward pass ran is scored in the next
single pass, run by one of the waiting callers in its own thread.
"""

from __future__ import annotations

import functools
import io
import logging
import threading
import time
from concurrent.futures import Future
from typing import Any

import numpy as np
import torch
from django.conf import settings
from PIL import Image

from training.ml import fusion, images, second_look
from training.ml.ensemble import DETAIL_COLUMNS, prediction_details

from . import gateway
from .outcomes import NoProductionModel, PairPrediction

logger = logging.getLogger(__name__)


class ModelHolder:
    """Holds the Production model of this process and swaps it atomically when the alias moves."""

    def __init__(self, *, name: str, poll_seconds: float) -> None:
        self.name = name
        self.poll_seconds = poll_seconds
        self._loaded = None  # the tracking module's LoadedModel, replaced as a whole (atomic reference swap)
        self._load_lock = threading.Lock()
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()

    def current(self):
        """The model to use now; loads it on first use. Raises NoProductionModel when none is registered."""
        loaded = self._loaded
        if loaded is None:
            self.refresh()
            loaded = self._loaded
            if loaded is None:
                raise NoProductionModel()
        self._ensure_poller()
        return loaded

    def refresh(self) -> bool:
        """Check the alias now and swap if it moved; True when a new version was swapped in."""
        with self._load_lock:
            version = gateway.alias_version(gateway.PRODUCTION_ALIAS, name=self.name)
            if version is None:
                return False
            if self._loaded is not None and self._loaded.version == version:
                return False
            started = time.perf_counter()
            fresh = gateway.predictor_load(version, name=self.name)
            previous = self._loaded.version if self._loaded is not None else None
            self._loaded = fresh  # the swap: in-flight batches keep their own reference to the old model
            logger.info(
                "inference: serving %s v%s (was v%s), loaded in %.0f ms",
                self.name,
                version,
                previous,
                (time.perf_counter() - started) * 1000,
            )
            return True

    def _ensure_poller(self) -> None:
        if self._poller is not None and self._poller.is_alive():
            return
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll, name="model-alias-poller", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # a registry hiccup must not kill serving: keep the current model, retry later
                logger.exception("inference: checking alias 'production' failed; keeping the current model")

    def stop(self) -> None:
        self._stop.set()


class MicroBatcher:
    """Scores preprocessed pairs in as few forward passes as possible, without a thread of its own.

    A caller whose result is not ready and who finds nobody running a forward pass runs the next one itself, in its
    own thread, on everything queued so far (oldest first, up to `max_batch` rows); the others wait and are woken
    when it is done. Whoever queued while a pass ran shares the next one. A single client therefore pays no thread
    hand-off at all (the hand-off to a dedicated batcher thread and back cost about 2 ms of GIL ping-pong per request
    under load, measured), and no caller waits for more than the passes queued ahead of it.
    """

    def __init__(self, holder: ModelHolder, *, max_batch: int = 32) -> None:
        self.holder = holder
        self.max_batch = max_batch
        self._pending: list[tuple[Any, Any, Future]] = []
        self._changed = threading.Condition()
        self._running = False
        self.forward_passes = 0  # how many batched forward passes ran (batching is visible in tests and benchmarks)

    def predict(self, front, back) -> tuple[np.ndarray, int]:
        """front/back: (N,C,H,W) tensors of one caller. Returns ([year, low, high] per row, the version used)."""
        self.holder.current()  # raises NoProductionModel before anything is queued
        future: Future = Future()
        with self._changed:
            self._pending.append((front, back, future))
            while not future.done():
                if self._running:
                    self._changed.wait()
                    continue
                self._running = True
                items = self._take_batch()
                self._changed.release()
                try:
                    self._run(items)
                finally:
                    self._changed.acquire()
                    self._running = False
                    self._changed.notify_all()
        return future.result()

    def _take_batch(self) -> list[tuple[Any, Any, Future]]:
        items, rows = [], 0
        while self._pending and (not items or rows + self._pending[0][0].shape[0] <= self.max_batch):
            item = self._pending.pop(0)
            items.append(item)
            rows += item[0].shape[0]
        return items

    def _run(self, items: list[tuple[Any, Any, Future]]) -> None:
        try:
            model = self.holder.current()
            fronts = torch.cat([item[0] for item in items])
            backs = torch.cat([item[1] for item in items])
            output = np.asarray(model.predict_pairs(fronts, backs))
            self.forward_passes += 1
            start = 0
            for front, _back, future in items:
                count = front.shape[0]
                future.set_result((output[start : start + count], model.version))
                start += count
        except BaseException as error:  # hand the failure to every caller of this pass; the others go on
            for _front, _back, future in items:
                if not future.done():
                    future.set_exception(error)


_holder: ModelHolder | None = None
_batcher: MicroBatcher | None = None
_singleton_lock = threading.Lock()


def get_batcher() -> MicroBatcher:
    """The process-wide batcher (and its holder), made on first use with this process's serving settings."""
    global _holder, _batcher
    with _singleton_lock:
        if _batcher is None:
            # Serving runs many tiny tensor ops per request: with OpenMP's pool on a busy 2-core machine each costs
            # 10-30 ms of thread wake-up (measured), with one thread microseconds. ONNX Runtime has its own threads.
            torch.set_num_threads(settings.INFERENCE_TORCH_THREADS)
            _holder = ModelHolder(name=settings.MLFLOW_MODEL_NAME, poll_seconds=settings.INFERENCE_ALIAS_POLL_SECONDS)
            _batcher = MicroBatcher(_holder)
        return _batcher


def reset() -> None:
    """Forget the loaded model (tests; and after the tracking store changed)."""
    global _holder, _batcher
    with _singleton_lock:
        if _holder is not None:
            _holder.stop()
        _holder, _batcher = None, None


def production_version_loaded() -> int | None:
    """The version this process serves now, without loading anything."""
    holder = _holder
    loaded = holder._loaded if holder is not None else None
    return loaded.version if loaded is not None else None


def warm_up() -> int | None:
    """Load the Production model now, so a fresh server process does not make its first request wait for it
    (gunicorn's post_worker_init calls this). Returns the version loaded; None when none is registered or the
    registry cannot be reached (then the first request tries again)."""
    try:
        loaded = get_batcher().holder.current()
        _first_forward_pass(loaded.config)
        return loaded.version
    except NoProductionModel:
        logger.info("inference: no model in production yet; predictions wait for the first one")
        return None
    except Exception:  # never keep a worker from starting: serving answers 503 until a model is there
        logger.warning("inference: no model loaded at start-up; the first request will try again", exc_info=True)
        return None


def _first_forward_pass(config) -> None:
    """Score one blank pair now, so that the first request does not pay ONNX Runtime's first-run work (its memory
    arena and kernel selection) nor the first JPEG decode. `make bench` measured the first 600 px prediction after a
    gunicorn start at 1.52-1.70 x the median of the next ten with the model only loaded, and 1.39-1.43 x (SQLite),
    1.46-1.55 x (PostgreSQL) with this pass; what remains is mostly the request thread's first database connection."""
    buffer = io.BytesIO()
    Image.new("RGB", (config.image_size, config.image_size), (128, 128, 128)).save(buffer, "JPEG")
    predict_pairs([(buffer.getvalue(), buffer.getvalue())])


def serving_config():
    """The TrainConfig of the model this process serves (loading it if needed), or None when none is registered."""
    try:
        return get_batcher().holder.current().config
    except NoProductionModel:
        return None


def predict_checked(pairs) -> list[PairPrediction]:
    """Score checked photo pairs (predictions.services.CheckedPhoto: .data, .pixels, .decoded_for), reusing the pixels decoded while checking them when they fit the model."""
    batcher = get_batcher()
    started = time.perf_counter()
    config = batcher.holder.current().config
    photos = [photo for pair in pairs for photo in pair]
    if not photos or any(photo.pixels is None or photo.decoded_for != config for photo in photos):
        return predict_pairs([(front.data, back.data) for front, back in pairs])
    transform = eval_transform(config)
    front = transform.batch(torch.stack([front.pixels for front, _back in pairs]))
    back = transform.batch(torch.stack([back.pixels for _front, back in pairs]))
    return _score(batcher, front, back, started, [(f.data, b.data) for f, b in pairs])


@functools.lru_cache(maxsize=4)
def eval_transform(config) -> images.CoinTransform:
    """The evaluation transform of a served config (a frozen TrainConfig), built once per config instead of once per
    request (0.03 ms each; cProfile had shown 1.9 ms, its own overhead on the many small calls)."""
    return images.build_transforms(config, train=False)


def predict_pairs(pairs: list[tuple[bytes, bytes]]) -> list[PairPrediction]:
    """Decode, preprocess and score photo pairs with the Production model (batched with concurrent callers).

    Raises NoProductionModel when none is registered, images.ImageError for a bad photo.
    """
    batcher = get_batcher()
    started = time.perf_counter()
    config = batcher.holder.current().config
    front, back = images.preprocess_batch(pairs, config, limits=settings.COINSITE_PHOTO_LIMITS)
    return _score(batcher, front, back, started, pairs)


def _score(
    batcher: MicroBatcher, front: torch.Tensor, back: torch.Tensor, started: float, pairs: list[tuple[bytes, bytes]]
) -> list[PairPrediction]:
    """Run preprocessed pairs through the batcher, then give the unsure ones a second look (training.ml.second_look:
    the coin cropped from a large frame, the photos turned); each gets its share of the time since ``started``."""
    output, version = batcher.predict(front, back)
    loaded = batcher.holder.current()
    calibration = loaded.calibration.get("calibration") or loaded.calibration
    n = len(output)
    fused = fusion.Fused(np.asarray(output), [None] * n, [fusion.READER] * n, [None] * n)
    if loaded.version == version:  # the model that answered first looks again (not one swapped in meanwhile)
        looked = second_look.look_again(
            loaded.predict_pairs,
            pairs,
            np.asarray(output),
            loaded.config,
            calibration,
            limits=settings.COINSITE_PHOTO_LIMITS,
        )
        fused = fusion.read_with_ocr(  # the OCR where still unsure
            pairs, looked, loaded.config, calibration, limits=settings.COINSITE_PHOTO_LIMITS
        )
    latency_ms = (time.perf_counter() - started) * 1000 / max(len(front), 1)
    return [_to_prediction(fused, i, version, latency_ms, loaded) for i in range(n)]


def _to_prediction(fused: fusion.Fused, index: int, version: int, latency_ms: float, loaded) -> PairPrediction:
    row = fused.rows[index]
    year = int(round(float(row[0])))
    low = min(int(np.floor(float(row[1]))), year)
    high = max(int(np.ceil(float(row[2]))), year)
    details = prediction_details(row, loaded.config, loaded.calibration.get("calibration") or loaded.calibration)
    fusion.annotate(details, fused, index)
    return PairPrediction(
        year=year,
        low=low,
        high=high,
        version=version,
        latency_ms=latency_ms,
        details=details,
        uncertainty=prediction_uncertainty(row),
    )


def prediction_uncertainty(row) -> float:
    """How unsure the model is of one coin, in nats: the entropy of the year distribution a date reader outputs.

    The reader's distribution is the mean of its fold models' distributions, so this entropy is the folds' own
    uncertainty plus their disagreement (the entropy of a mixture is the mean entropy of its parts plus their
    Jensen-Shannon divergence): one figure covers both. A regression ensemble has no distribution; its interval
    (widened by the folds' spread) stands in, as the entropy of a uniform belief over it, ln(width + 1), the same
    scale (exp() of either is "how many years the model hesitates between").
    """
    row = np.asarray(row, dtype=np.float64)
    if len(row) > DETAIL_COLUMNS:
        p = np.clip(row[DETAIL_COLUMNS:], 0.0, None)
        p = p / max(p.sum(), 1e-12)
        nonzero = p[p > 0]
        return float(-(nonzero * np.log(nonzero)).sum())
    return float(np.log(max(float(row[2]) - float(row[1]), 0.0) + 1.0))
