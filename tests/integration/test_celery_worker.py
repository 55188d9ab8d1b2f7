"""A real `celery worker` process on Redis runs a task that writes a row to PostgreSQL; the test sees the row."""

import pytest
from django.db import connection

from tests.factories import CoinFactory, UserFactory
from tests.integration.conftest import wait_until
from training.models import DatasetVersion
from training.tasks import dataset_freeze_task

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_real_worker_on_redis_writes_a_row_to_postgres(start_worker):
    # given: labelled coins in PostgreSQL and a worker listening on the training queue
    assert connection.vendor == "postgresql"
    owner = UserFactory()
    for year in (1750, 1850, 1950):
        CoinFactory(owner=owner, verified_year=year, source="import")
    worker = start_worker("training")

    # when: the task is sent through Redis (not run in-process)
    result = dataset_freeze_task.apply_async(kwargs={"kind": "training"})
    assert result.id

    # then: the worker process wrote the frozen dataset row
    wait_until(lambda: DatasetVersion.objects.exists(), timeout=60, message=f"the worker's row\n{worker.log()}")
    dataset = DatasetVersion.objects.get()
    training_years = sorted(row["year"] for row in dataset.manifest)
    assert set(training_years) <= {1750, 1850, 1950}
    assert "dataset_freeze_task" in worker.log()
