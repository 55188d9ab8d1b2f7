"""The process-wide model holder (registry.serving): loads Production, batches concurrent callers, follows alias
moves without a restart, and scores photos decoded once while they were checked."""

import threading
import time

import pytest

from registry import serving
from tests.factories import jpeg_bytes
from training.ml import tracking

pytestmark = pytest.mark.django_db


def pair(seed: int) -> tuple[bytes, bytes]:
    return jpeg_bytes(seed=2 * seed), jpeg_bytes(color=(90, 90, 110), seed=2 * seed + 1)


def test_predict_pairs_returns_one_year_per_pair_with_interval_and_version(production_model):
    results = serving.predict_pairs([pair(1), pair(2), pair(3)])

    assert len(results) == 3
    for result in results:
        assert result.low <= result.year <= result.high
        assert result.version == production_model
        assert result.latency_ms > 0


def test_same_pair_gives_same_year_alone_and_in_a_batch(production_model):
    alone = serving.predict_pairs([pair(5)])[0]
    batched = serving.predict_pairs([pair(4), pair(5), pair(6)])[1]
    assert (alone.year, alone.low, alone.high) == (batched.year, batched.low, batched.high)


def test_warm_up_loads_the_production_model_and_tolerates_none(production_model, settings):
    assert serving.warm_up() == production_model
    settings.MLFLOW_MODEL_NAME = "coin-year-nothing-registered"
    serving.reset()
    assert serving.warm_up() is None


def test_warm_up_scores_one_blank_pair_so_the_first_request_does_not_pay_the_first_run(production_model, monkeypatch):
    scored = []
    real = serving.predict_pairs
    monkeypatch.setattr(serving, "predict_pairs", lambda pairs: scored.append(len(pairs)) or real(pairs))
    serving.reset()

    assert serving.warm_up() == production_model
    assert scored == [1]


def test_concurrent_callers_share_forward_passes(production_model):
    serving.predict_pairs([pair(0)])  # load the model first
    batcher = serving.get_batcher()
    passes_before = batcher.forward_passes
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def client(n: int) -> None:
        try:
            start.wait()
            for k in range(4):
                serving.predict_pairs([pair(10 * n + k)])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    assert batcher.forward_passes - passes_before < 32, "every request ran its own forward pass: no batching"


def test_a_lone_caller_runs_the_forward_pass_in_its_own_thread(production_model, monkeypatch):
    """No hand-off to another thread (and back) when nobody else is waiting."""
    serving.predict_pairs([pair(0)])  # load the model first
    model = serving.get_batcher().holder.current()
    original = model.predict_pairs
    threads_seen = []

    def recording(front, back):
        threads_seen.append(threading.current_thread())
        return original(front, back)

    monkeypatch.setattr(model, "predict_pairs", recording)

    serving.predict_pairs([pair(1)])

    assert threads_seen == [threading.current_thread()]


def test_a_failed_forward_pass_fails_its_callers_and_the_next_caller_is_served(production_model, monkeypatch):
    serving.predict_pairs([pair(0)])
    model = serving.get_batcher().holder.current()
    original = model.predict_pairs
    calls = []

    def fail_once(front, back):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("forward pass failed")
        return original(front, back)

    monkeypatch.setattr(model, "predict_pairs", fail_once)

    with pytest.raises(RuntimeError, match="forward pass failed"):
        serving.predict_pairs([pair(2)])
    assert len(serving.predict_pairs([pair(3)])) == 1


def test_alias_move_switches_version_without_restart_and_no_request_fails(
    production_model, registered_tiny_versions, settings
):
    # given: a holder that checks the alias often, and a client sending requests in a loop
    settings.INFERENCE_ALIAS_POLL_SECONDS = 0.2
    serving.reset()
    old_version, new_version = registered_tiny_versions
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                seen.append(serving.predict_pairs([pair(len(seen) % 7)])[0].version)
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while old_version not in seen and time.monotonic() < deadline:
            time.sleep(0.05)

        # when: the owner moves the alias to the new version
        tracking.set_alias("coin-year", "production", new_version)

        deadline = time.monotonic() + 30
        while (not seen or seen[-1] != new_version) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)

    # then: every request succeeded, and the versions switched once, from old to new
    assert not errors
    assert seen[0] == old_version and seen[-1] == new_version
    switch = seen.index(new_version)
    assert set(seen[:switch]) == {old_version} and set(seen[switch:]) == {new_version}


def test_photos_decoded_while_checking_give_the_same_years_as_raw_bytes(production_model):
    from predictions.services import photo_check_header, photo_decode

    config = serving.serving_config()
    pairs = [pair(21), pair(22)]
    checked = [
        (
            photo_decode(photo_check_header(front, field="front"), config),
            photo_decode(photo_check_header(back, field="back"), config),
        )
        for front, back in pairs
    ]

    assert all(photo.pixels is not None for two in checked for photo in two)
    from_pixels = serving.predict_checked(checked)
    from_bytes = serving.predict_pairs(pairs)
    assert [(r.year, r.low, r.high) for r in from_pixels] == [(r.year, r.low, r.high) for r in from_bytes]
