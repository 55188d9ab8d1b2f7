"""The registered model as MLflow serves it: training.ml.pyfunc (models-from-code) and the Model-Serving JSON.

The module trains and registers its own tiny model in a temporary SQLite store (see test_tracking.train_and_register)
and loads it back exactly as a client would: ``models:/coin-year@production``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
from mlflow.exceptions import MlflowException
from PIL import Image

from tests.training.ml.test_tracking import (  # noqa: F401 - `trained` is a fixture
    MODEL,
    coin_photos,
    free_port,
    in_memory_years,
    stop_group,
    trained,
    wait_for_http,
)
from training.ml import images, tracking

PRODUCTION_URI = f"models:/{MODEL}@production"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def inputs_of(photos) -> list[dict[str, str]]:
    return [{"front_image_base64": b64(f), "back_image_base64": b64(b)} for f, b, _ in photos]


def four_bodies(inputs: list[dict[str, str]], **extra) -> dict[str, dict]:
    """The same coins in each of the four bodies `mlflow models serve` accepts (its scoring server's
    SUPPORTED_FORMATS); `extra` (e.g. params) is added to each."""
    sides = ["back_image_base64", "front_image_base64"]  # columns in the other order: they are matched by name
    return {
        "inputs": {"inputs": inputs, **extra},
        "dataframe_records": {"dataframe_records": inputs, **extra},
        "dataframe_split": {
            "dataframe_split": {"columns": sides, "data": [[item[side] for side in sides] for item in inputs]},
            **extra,
        },
        "instances": {"instances": inputs, **extra},
    }


def invoke(model, body: dict) -> tuple[int, dict]:
    """What `mlflow models serve` answers to a JSON body, without a server: its own request handler."""
    from mlflow.pyfunc import scoring_server

    try:
        answer = scoring_server.invocations(
            json.dumps(body), "application/json", model, model.metadata.get_input_schema()
        )
    except MlflowException as error:
        return error.get_http_status_code(), {"message": error.message}
    return answer.status, json.loads(answer.response)


def rounded(rows: np.ndarray) -> list[int]:
    return [int(round(float(row[0]))) for row in rows]


@pytest.fixture(scope="module")
def served(trained):  # noqa: F811 - the imported fixture
    return mlflow.pyfunc.load_model(PRODUCTION_URI)


def test_pyfunc_returns_one_int_year_per_input_in_order(trained, served):  # noqa: F811
    photos = trained.photos[:6]
    expected = rounded(in_memory_years(trained, photos))
    assert len(set(expected)) > 2, "the tiny model must tell coins apart, or the order check proves nothing"

    years = served.predict(inputs_of(photos))
    reversed_years = served.predict(inputs_of(photos[::-1]))

    assert years == expected
    assert all(type(year) is int for year in years)
    assert reversed_years == expected[::-1]


def test_pyfunc_refuses_an_empty_request_as_the_api_does(served):
    # the signature's two required columns: MLflow refuses a body without rows (/api/predict: "inputs is empty")
    with pytest.raises(MlflowException) as caught:
        served.predict([])

    assert caught.value.get_http_status_code() == 400


def test_same_photo_gives_the_same_year_in_memory_through_load_predictor_and_the_pyfunc(trained, served, tmp_path):  # noqa: F811
    # given coins the model never saw, one of them as a big PNG instead of a small JPEG
    photos = coin_photos(count=4, seed=99)
    front, back, year = photos[0]
    big = io.BytesIO()
    Image.open(io.BytesIO(front)).resize((300, 300)).save(big, format="PNG")
    photos[0] = (big.getvalue(), back, year)

    # when scored in memory (eval transform + the fit's ensemble), through load_predictor and through the pyfunc
    in_memory = in_memory_years(trained, photos)
    front_t, back_t = images.preprocess_batch([(f, b) for f, b, _ in photos], trained.config)
    loaded = tracking.load_predictor(MODEL, trained.version, cache_dir=str(tmp_path)).predict_pairs(front_t, back_t)
    pyfunc_years = served.predict(inputs_of(photos))

    # then the three agree
    np.testing.assert_allclose(loaded, in_memory, atol=0.05)
    assert rounded(loaded) == rounded(in_memory) == pyfunc_years


def test_pyfunc_accepts_url_safe_base64_and_data_urls(trained, served):  # noqa: F811
    front, back, _ = trained.photos[0]
    plain = served.predict(inputs_of([(front, back, 0)]))
    variants = [
        {"front_image_base64": base64.urlsafe_b64encode(front).decode().rstrip("="), "back_image_base64": b64(back)},
        {"front_image_base64": "data:image/jpeg;base64," + b64(front), "back_image_base64": b64(back)},
    ]

    assert served.predict(variants) == plain * 2


def test_bad_base64_is_a_400_naming_the_input_and_side(trained, served):  # noqa: F811
    good = inputs_of(trained.photos[:1])[0]
    bad = {"front_image_base64": good["front_image_base64"], "back_image_base64": "%%% not base64 %%%"}

    with pytest.raises(MlflowException) as caught:
        served.predict([good, bad])

    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert caught.value.get_http_status_code() == 400
    assert "inputs[1].back_image_base64" in caught.value.message
    assert "base64" in caught.value.message


def test_base64_of_something_that_is_not_an_image_is_a_400(trained, served):  # noqa: F811
    good = inputs_of(trained.photos[:2])
    good[1] = {
        "front_image_base64": b64(b"this is a text file, not a photo"),
        "back_image_base64": good[1]["back_image_base64"],
    }

    with pytest.raises(MlflowException) as caught:
        served.predict(good)

    assert caught.value.get_http_status_code() == 400
    assert "inputs[1].front_image_base64" in caught.value.message
    assert "not_an_image" in caught.value.message


def test_missing_photo_field_is_rejected_before_decoding(served):
    with pytest.raises(MlflowException) as caught:
        served.predict([{"front_image_base64": "abcd"}])

    assert caught.value.get_http_status_code() == 400
    assert "back_image_base64" in caught.value.message


def test_pyfunc_pytorch_fallback_gives_the_onnx_years(trained, served, monkeypatch):  # noqa: F811
    monkeypatch.setenv("COINSITE_MODEL_BACKEND", "torch")
    fallback = mlflow.pyfunc.load_model(PRODUCTION_URI)
    payload = inputs_of(trained.photos)

    assert served.unwrap_python_model().backend == "onnx"
    assert fallback.unwrap_python_model().backend == "torch"
    assert fallback.predict(payload) == served.predict(payload)


def test_model_signature_is_the_model_serving_json(served):
    schema = served.metadata.get_input_schema().to_dict()
    text = str(schema)

    assert "front_image_base64" in text and "back_image_base64" in text


def test_model_signature_declares_a_details_parameter_defaulting_to_false(served):
    params = served.metadata.get_params_schema()

    assert [(p.name, p.dtype.name, p.default) for p in params.params] == [("details", "boolean", False)]


def test_details_parameter_returns_the_details_through_the_loaded_pyfunc(trained, served):  # noqa: F811
    # given the model loaded as any MLflow client loads it (so MLflow checks params against the signature)
    payload = inputs_of(trained.photos[:3])
    years = served.predict(payload)

    # when the details are asked for through MLflow's params
    details = served.predict(payload, params={"details": True})

    # then every input has its details, agreeing with the plain years
    assert len(details) == 3 and all(isinstance(d, dict) for d in details)
    assert [d.get("year") for d in details] == years
    assert all(("rejected" in d) or {"year", "low", "high", "level"} <= set(d) for d in details)
    assert served.predict(payload, params={"details": False}) == years


def test_four_request_bodies_give_identical_answers_in_process_and_through_the_scoring_server(trained, served):  # noqa: F811
    """Must show 6 (without a server): mlflow's own request handler parses each body as `mlflow models serve` does."""
    payload = inputs_of(trained.photos[:4])
    years = served.predict(payload)
    details = served.predict(payload, params={"details": True})

    plain = {name: invoke(served, body) for name, body in four_bodies(payload).items()}
    detailed = {name: invoke(served, body) for name, body in four_bodies(payload, params={"details": True}).items()}

    assert plain == {name: (200, {"predictions": years}) for name in plain}
    assert detailed == {name: (200, {"predictions": details}) for name in detailed}


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": {"front_image_base64": ["a"], "back_image_base64": ["b"]}},  # columns: /api/predict refuses them too
        {"instances": {"front_image_base64": ["a"], "back_image_base64": ["b"]}},
        {"dataframe_records": [{"front_image_base64": 12345, "back_image_base64": "b"}]},
        {"dataframe_split": {"data": [["a", "b"]]}},  # no column names
    ],
    ids=["inputs-columns", "instances-columns", "number", "split-without-columns"],
)
def test_scoring_server_refuses_what_the_api_refuses(served, body):
    status, answer = invoke(served, body)

    assert status == 400, answer


def test_scoring_server_refuses_a_bad_photo_in_any_body_naming_its_row(trained, served):  # noqa: F811
    payload = inputs_of(trained.photos[:2])
    payload[1] = {**payload[1], "back_image_base64": "%%% not base64 %%%"}

    answers = {name: invoke(served, body) for name, body in four_bodies(payload).items()}

    for name, (status, body) in answers.items():
        assert status == 400, name
        assert "inputs[1].back_image_base64" in body["message"], name


@pytest.mark.slow
def test_mlflow_models_serve_answers_the_model_serving_json(trained, served, tmp_path):  # noqa: F811
    """Must show: `mlflow models serve -m models:/coin-year@production --env-manager local` from another folder
    (so `training` comes from the model's own code path, not from this repository) answers the fixed JSON, and
    (issue 21, must show 6) its three other bodies with the same years, and the details for params.details."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": trained.tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("PYTHONPATH", None)
    # the scoring server execs `uvicorn` by name: the virtualenv's bin/ must be on PATH (as with an activated venv)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    started = time.monotonic()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "models",
            "serve",
            "-m",
            PRODUCTION_URI,
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        try:
            wait_for_http(f"http://127.0.0.1:{port}/ping", server, timeout=90)
        except AssertionError:
            log.flush()
            raise AssertionError((tmp_path / "serve.log").read_text(errors="replace")[-3000:]) from None
        url = f"http://127.0.0.1:{port}/invocations"
        photos = trained.photos[:2]
        expected = rounded(in_memory_years(trained, photos))

        answer = requests.post(url, json={"inputs": inputs_of(photos)}, timeout=60)
        bad = requests.post(
            url,
            json={
                "inputs": [{"front_image_base64": "!!", "back_image_base64": inputs_of(photos)[0]["back_image_base64"]}]
            },
            timeout=60,
        )

        assert answer.status_code == 200, answer.text
        assert answer.json() == {"predictions": expected}
        assert all(type(year) is int for year in answer.json()["predictions"])
        assert 400 <= bad.status_code < 500, bad.text
        assert "inputs[0].front_image_base64" in bad.json()["message"]

        payload = inputs_of(trained.photos[:3])
        in_process = served.predict(payload)
        in_process_details = served.predict(payload, params={"details": True})
        plain = {n: requests.post(url, json=b, timeout=60) for n, b in four_bodies(payload).items()}
        detailed = {
            n: requests.post(url, json=b, timeout=60) for n, b in four_bodies(payload, params={"details": True}).items()
        }
        assert {n: (a.status_code, a.json()) for n, a in plain.items()} == {
            n: (200, {"predictions": in_process}) for n in plain
        }
        assert {n: (a.status_code, a.json()) for n, a in detailed.items()} == {
            n: (200, {"predictions": in_process_details}) for n in detailed
        }
        print(f"mlflow models serve: first answer after {time.monotonic() - started:.1f} s")
    finally:
        stop_group(server)
        log.close()
