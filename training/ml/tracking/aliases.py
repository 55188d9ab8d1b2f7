"""Registered versions and their aliases: registering a logged model, reading versions, moving aliases.

``production`` is the alias serving follows. The very first version of a name claims it (claim_production) so a
fresh install serves as soon as one model exists; any later version reaches Production only through a promotion,
which moves the alias with set_alias. A version whose run failed is deleted again (rollback_version) so it can
never be promoted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from training.ml.tracking import store
from training.ml.tracking.names import DEFAULT_MODEL_NAME, PRODUCTION_ALIAS

logger = logging.getLogger(__name__)


def register_version(model_uri: str, model_name: str, *, run_id: str | None) -> tuple[int, bool]:
    """Create a version; returns (version, whether it is the only version of the name)."""
    client = store.client()
    mv = mlflow.register_model(model_uri, model_name, tags={"coinsite.run_id": run_id} if run_id else None)
    version = int(mv.version)
    versions = [int(v.version) for v in client.search_model_versions(f"name = '{store.quote(model_name)}'")]
    logger.info("registered %s v%s from run %s", model_name, version, run_id)
    return version, versions == [version]


def claim_production(client: MlflowClient, name: str, version: int) -> None:
    """Give ``version`` the production alias unless some version holds it already."""
    if PRODUCTION_ALIAS in (client.get_registered_model(name).aliases or {}):
        return
    client.set_registered_model_alias(name, PRODUCTION_ALIAS, str(int(version)))
    logger.info("%s v%s is the first version: alias %s set", name, version, PRODUCTION_ALIAS)


def register_model(model_uri: str, model_name: str = DEFAULT_MODEL_NAME, *, run_id: str | None = None) -> int:
    """Create a version of ``model_name`` from a logged model (outside a tracker); the first version ever gets
    alias ``production`` at once."""
    version, first = register_version(model_uri, model_name, run_id=run_id)
    if first:
        claim_production(store.client(), model_name, version)
    return version


def rollback_version(client: MlflowClient, name: str, version: int) -> None:
    """Delete a version whose run failed, and the registered model with it when that was its only version."""
    client.delete_model_version(name, str(version))
    if not client.search_model_versions(f"name = '{store.quote(name)}'"):
        with contextlib.suppress(MlflowException):
            client.delete_registered_model(name)
    logger.warning("rolled back %s v%s: its training run failed", name, version)


def get_alias_version(name: str, alias: str = PRODUCTION_ALIAS) -> int | None:
    """Version the alias points to; None when the model or the alias does not exist."""
    try:
        model = store.client().get_registered_model(name)
    except MlflowException as error:
        if store.is_missing(error):
            return None
        raise
    version = (model.aliases or {}).get(alias)
    return int(version) if version is not None else None


def set_alias(name: str, alias: str, version: int) -> None:
    """Point ``alias`` at ``version`` (raises MlflowException when the version does not exist)."""
    store.client().set_registered_model_alias(name, alias, str(int(version)))


def delete_alias(name: str, alias: str) -> None:
    """Remove an alias; no error when it (or the model) does not exist."""
    try:
        store.client().delete_registered_model_alias(name, alias)
    except MlflowException as error:
        if not store.is_missing(error):
            raise


def list_versions(name: str = DEFAULT_MODEL_NAME) -> list[int]:
    """All version numbers of a registered model (empty when it does not exist), ascending."""
    try:
        versions = store.client().search_model_versions(f"name = '{store.quote(name)}'")
    except MlflowException as error:
        if store.is_missing(error):
            return []
        raise
    return sorted(int(v.version) for v in versions)


def version_info(name: str, version: int) -> dict[str, Any]:
    """run_id, the run's metrics, aliases, creation time (aware UTC datetime) and more of one version."""
    client = store.client()
    mv = client.get_model_version(name, str(int(version)))
    metrics: dict[str, float] = {}
    status = None
    if mv.run_id:
        try:
            run = client.get_run(mv.run_id)
            metrics = dict(run.data.metrics)
            status = run.info.status
        except MlflowException as error:
            if not store.is_missing(error):
                raise
    created_ms = int(mv.creation_timestamp or 0)
    return {
        "name": name,
        "version": int(mv.version),
        "run_id": mv.run_id or "",
        "run_status": status,
        "metrics": metrics,
        "aliases": list(mv.aliases or []),
        "creation_time": dt.datetime.fromtimestamp(created_ms / 1000, tz=dt.UTC),
        "creation_timestamp_ms": created_ms,
        "source": mv.source,
        "status": mv.status,
        "tags": dict(mv.tags or {}),
    }
