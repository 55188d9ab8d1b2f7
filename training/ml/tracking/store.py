"""Which MLflow store the library talks to: configure() once per process, then client() everywhere.

The tracking URI, the artifact root and the experiment come in as arguments (the Django side passes its settings
through training.mlflow_access.mlflow_ready()), so this package never reads Django settings. The configured
experiment is kept in a process-wide ``state`` because runs, loading and aliases all need the same store.
"""

from __future__ import annotations

import fcntl
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode

from training.ml.tracking.names import DEFAULT_EXPERIMENT


@dataclass
class State:
    """The store configure() chose, shared by every module of the package (one store per process)."""

    tracking_uri: str | None = None
    experiment: str = DEFAULT_EXPERIMENT
    experiment_id: str | None = None
    artifact_location: str | None = None  # of the configured experiment, when we chose it (local stores)


state = State()
state_lock = threading.Lock()


def _is_remote_store(uri: str) -> bool:
    """A tracking server (or Databricks) decides where artifacts go; a local store (sqlite, file, database) takes ours."""
    scheme = urlparse(uri).scheme.lower()
    return scheme in {"http", "https", "databricks", "databricks-uc", "uc"}


def _artifact_uri(root: str) -> str:
    """A folder path becomes a file:// URI; anything with a scheme (s3://, gs://, file://...) is kept as it is."""
    parsed = urlparse(root)
    if parsed.scheme and len(parsed.scheme) > 1:  # "C:" is a drive letter, not a scheme
        return root
    path = Path(root).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def configure(tracking_uri: str, *, artifact_root: str | None = None, experiment: str = DEFAULT_EXPERIMENT) -> str:
    """Point MLflow tracking and registry at ``tracking_uri`` and make sure the experiment exists; returns its id.

    Works for the embedded default (``sqlite:///var/mlflow.db`` with a local artifact folder) and for a tracking
    server (``http://host:5000``; the server then owns the artifact location and ``artifact_root`` is ignored).
    Idempotent and safe when two processes create the experiment at once.
    """
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    with _sqlite_store_created(tracking_uri):
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        client.search_registered_models(max_results=1)  # the registry's tables: made now, under the lock
    location = _artifact_uri(artifact_root) if artifact_root and not _is_remote_store(tracking_uri) else None
    found = client.get_experiment_by_name(experiment)
    if found is None:
        try:
            experiment_id = client.create_experiment(experiment, artifact_location=location)
        except MlflowException as error:  # created by another process meanwhile
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            experiment_id = client.get_experiment_by_name(experiment).experiment_id
    else:
        experiment_id = found.experiment_id
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(experiment_id)
    with state_lock:
        state.tracking_uri = tracking_uri
        state.experiment = experiment
        state.experiment_id = experiment_id
        state.artifact_location = location
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@contextmanager
def _sqlite_store_created(tracking_uri: str) -> Iterator[None]:
    """For a local SQLite store: create (or migrate) its tables under an exclusive lock on a file beside it. MLflow
    builds a fresh store with Alembic, whose steps two processes running at once collide in: two gunicorn workers
    answering their first requests on a fresh embedded default gave "table _alembic_tmp_experiments already exists"
    and a 500. Other stores (a tracking server) are the server's to create."""
    db_path = tracking_uri[len("sqlite:///") :] if tracking_uri.startswith("sqlite:///") else ""
    if not db_path or db_path == ":memory:":
        yield
        return
    path = Path(db_path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.create-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def client() -> MlflowClient:
    """A client of the configured store (or of MLflow's current tracking URI before configure())."""
    uri = state.tracking_uri or mlflow.get_tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(experiment: str | None) -> str:
    """Id of the named experiment (created when missing), or of the configured one."""
    if experiment is None or experiment == state.experiment:
        if state.experiment_id is None:
            raise RuntimeError("training.ml.tracking.configure(tracking_uri) must be called first")
        return state.experiment_id
    mlflow_client = client()
    found = mlflow_client.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    location = f"{state.artifact_location.rstrip('/')}/{safe_name(experiment)}" if state.artifact_location else None
    try:
        return mlflow_client.create_experiment(experiment, artifact_location=location)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
        return mlflow_client.get_experiment_by_name(experiment).experiment_id


def is_missing(error: MlflowException) -> bool:
    """Whether MLflow refused because the model, version, alias or run does not exist."""
    return error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST) or "not found" in str(error.message).lower()


def quote(name: str) -> str:
    """A model name inside a search filter's single quotes."""
    return name.replace("'", "\\'")


def safe_name(text: str) -> str:
    """A name usable as one folder of a path (experiment artifact folders, the model cache)."""
    return re.sub(r"[^0-9A-Za-z_.-]", "_", text)[:80]
