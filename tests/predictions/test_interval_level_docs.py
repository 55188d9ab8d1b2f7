"""The interval level the docs and the schema state is the one the answers use (issue 21: README and schema said
80 % while every answer of the date reader said 95 %)."""

from __future__ import annotations

from pathlib import Path

from training.ml.config import load_config

README = Path(__file__).resolve().parents[2] / "docs" / "api.md"  # the README links it for the API


def test_readme_and_schema_state_the_level_of_the_configuration_make_run_trains(client):
    # given the level of configs/default.yaml (what `make run`, train and retrain use), which every answer states
    level = load_config().interval_level
    assert level == 0.95

    # when reading the README's API section and the schema's answer example and field description
    text = " ".join(README.read_text().split())
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    answer = schema["paths"]["/api/predict"]["post"]["responses"]["200"]["content"]["application/json"]["examples"]
    example_level = next(iter(answer.values()))["value"]["details"][0]["level"]
    described = schema["components"]["schemas"]["PredictionDetail"]["properties"]["level"]["description"]

    # then they all say that level
    assert f"holds `level` of the model's belief ({level:g}:" in text
    assert "(80 %)" not in text
    assert example_level == level
    assert f"{level:g} for the date reader" in described
