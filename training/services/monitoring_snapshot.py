"""The monitoring page's figures, computed in the background and stored (training.models.MonitoringSnapshot).

Why: the page used to compute its report inside the request: it measured the photo statistics of every coin served
since the last view (2.6-140 ms a coin) and read every prediction of the window, 6.3 s and 8.7 s on a first view
after uploads. Now a refresh computes the report and draws its figures, and the page reads one row and says how old
its figures are. Who refreshes:

- with a broker, beat every 5 minutes (the periodic task "Refresh the monitoring figures", on the `inference` queue:
  the `training` worker may be busy with a run for an hour);
- a view that finds its window's figures older than MONITORING_REFRESH_SECONDS (300) asks for a refresh: a task on
  the broker, or without one (the embedded default, which runs no beat) a daemon thread of the web process, so the
  request never waits for it. Inside an open transaction (a test's) a thread could not see the rows, so the refresh
  runs in the caller, as training.services.background does for training runs.

Photos not measured within a refresh's budget (MONITORING_REFRESH_STATS_SECONDS, 120) are measured by the next one;
the page says how many are left.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Q
from django.utils import timezone

from ..models import MonitoringSnapshot
from ..signals import monitoring_refresh_requested
from .monitoring import (
    WEEKS,
    Accuracy,
    MonitoringReport,
    ServingPeriod,
    VersionMonitoring,
    WeekDrift,
    monitoring_report,
)
from .monitoring_figures import FigureImage, figures_digest, monitoring_figures_draw
from .photo_stats import FeatureDrift

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 300  # MONITORING_REFRESH_SECONDS: figures older than this are refreshed when viewed
REFRESH_STATS_SECONDS = 120.0  # MONITORING_REFRESH_STATS_SECONDS: photo measuring budget of one refresh
REQUEST_TIMEOUT_SECONDS = 900  # a refresh asked for this long ago and not finished is taken as lost: ask again

_threads: dict[int, threading.Thread] = {}
_threads_lock = threading.Lock()


@dataclass(frozen=True)
class MonitoringFigures:
    """What the page shows: the report and its figures, with how old they are and whether a refresh is under way."""

    weeks: int
    report: MonitoringReport | None  # None: never computed (or by code whose report had other fields)
    figures: tuple[FigureImage, ...]
    computed_at: datetime | None
    compute_seconds: float | None
    refreshing: bool  # a refresh was asked for and has not finished

    @property
    def age(self) -> timedelta | None:
        return timezone.now() - self.computed_at if self.computed_at else None

    @property
    def stale(self) -> bool:
        age = self.age
        return age is None or age.total_seconds() > refresh_seconds()


def refresh_seconds() -> int:
    return int(getattr(settings, "MONITORING_REFRESH_SECONDS", REFRESH_SECONDS))


def default_weeks() -> int:
    return int(getattr(settings, "MONITORING_WEEKS", WEEKS))


# -- the stored form ----------------------------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    """JSON without NaN or infinities (PostgreSQL's jsonb refuses them): those become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def report_to_json(report: MonitoringReport) -> dict[str, Any]:
    """The report as plain JSON values (dates as ISO strings, no NaN), what the JSONField stores and gives back."""
    return json.loads(json.dumps(_finite(dataclasses.asdict(report)), default=_isoformat))


def _isoformat(value: Any) -> str:
    """Dates and times in full (DjangoJSONEncoder would cut times to milliseconds)."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _datetime(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _accuracy(data: dict) -> Accuracy:
    return Accuracy(**{**data, "week": _date(data["week"])})


def _week_drift(data: dict) -> WeekDrift:
    features = tuple(FeatureDrift(**item) for item in data["features"])
    return WeekDrift(**{**data, "week": _date(data["week"]), "features": features})


def _version(data: dict) -> VersionMonitoring:
    return VersionMonitoring(
        **{
            **data,
            "overall": _accuracy(data["overall"]),
            "weeks": tuple(_accuracy(item) for item in data["weeks"]),
            "drift": tuple(_week_drift(item) for item in data["drift"]),
        }
    )


def report_from_json(data: dict[str, Any]) -> MonitoringReport:
    """The stored report back as the typed dataclasses; a TypeError/KeyError when its fields are not these."""
    return MonitoringReport(
        **{
            **data,
            "since": _datetime(data["since"]),
            "weeks": tuple(_date(item) for item in data["weeks"]),
            "versions": tuple(_version(item) for item in data["versions"]),
            "serving": tuple(
                ServingPeriod(**{**item, "start": _datetime(item["start"]), "end": _datetime(item["end"])})
                for item in data["serving"]
            ),
        }
    )


# -- reads and refreshes ------------------------------------------------------------------------------------------


def monitoring_figures_get(*, weeks: int) -> MonitoringFigures:
    """The stored figures of the window (one query); `report` None when none are stored or they cannot be read."""
    row = MonitoringSnapshot.objects.filter(weeks=weeks).first()
    if row is None:
        return MonitoringFigures(weeks, None, (), None, None, refreshing=False)
    report = None
    if row.report and row.name == settings.MLFLOW_MODEL_NAME:
        try:
            report = report_from_json(row.report)
        except (TypeError, KeyError, ValueError):  # stored by code whose report had other fields: computed again
            logger.info("monitoring snapshot of %s weeks has another shape; refreshing it", weeks)
    figures = tuple(FigureImage(**item) for item in row.figures) if report is not None else ()
    return MonitoringFigures(
        weeks=weeks,
        report=report,
        figures=figures,
        computed_at=row.computed_at if report is not None else None,
        compute_seconds=row.compute_seconds,
        refreshing=row.requested_at is not None,
    )


def monitoring_snapshot_refresh(*, weeks: int, budget_seconds: float | None = None) -> MonitoringSnapshot:
    """Compute the window's report (measuring photos within the budget) and its figures, and store them."""
    started = time.perf_counter()
    budget = getattr(settings, "MONITORING_REFRESH_STATS_SECONDS", REFRESH_STATS_SECONDS)
    report = monitoring_report(weeks=weeks, budget_seconds=budget if budget_seconds is None else budget_seconds)
    digest = figures_digest(report)
    previous = MonitoringSnapshot.objects.filter(weeks=weeks).first()
    if previous is not None and previous.digest == digest and previous.figures:
        figures = previous.figures  # the same figures: 0.6-0.8 s of drawing saved
    else:
        figures = [dataclasses.asdict(figure) for figure in monitoring_figures_draw(report)]
    snapshot, _ = MonitoringSnapshot.objects.update_or_create(
        weeks=weeks,
        defaults={
            "name": report.name,
            "report": report_to_json(report),
            "figures": figures,
            "digest": digest,
            "computed_at": timezone.now(),
            "compute_seconds": round(time.perf_counter() - started, 3),
            "requested_at": None,
        },
    )
    logger.info("monitoring figures of %s weeks refreshed in %.1f s", weeks, snapshot.compute_seconds)
    return snapshot


def monitoring_snapshots_refresh(*, weeks: Iterable[int] | None = None) -> list[int]:
    """Refresh the given windows, or (beat) the default window and every window a page asked for before."""
    wanted = (
        set(weeks)
        if weeks is not None
        else {default_weeks(), *MonitoringSnapshot.objects.values_list("weeks", flat=True)}
    )
    for item in sorted(wanted):
        monitoring_snapshot_refresh(weeks=item)
    return sorted(wanted)


def monitoring_refresh_request(*, weeks: int) -> bool:
    """Ask for the window's figures to be refreshed in the background, once: True when this call asked (no refresh
    pending, or the pending one is older than REQUEST_TIMEOUT_SECONDS and taken as lost)."""
    now = timezone.now()
    MonitoringSnapshot.objects.get_or_create(weeks=weeks, defaults={"name": settings.MLFLOW_MODEL_NAME})
    claimed = MonitoringSnapshot.objects.filter(
        Q(requested_at__isnull=True) | Q(requested_at__lt=now - timedelta(seconds=REQUEST_TIMEOUT_SECONDS)),
        weeks=weeks,
    ).update(requested_at=now)
    if not claimed:
        return False
    # Sent now, not on commit: a page's GET has no transaction of its own, and inside a caller's (a test's) the
    # receiver refreshes synchronously, since no thread or worker could see the rows yet.
    monitoring_refresh_requested.send(sender=MonitoringSnapshot, weeks=weeks)
    return True


def monitoring_refresh_in_background(*, weeks: int) -> bool:
    """Refresh in a daemon thread of this process (the embedded default, which has no worker); False (nothing
    started) inside an open transaction, whose rows the thread's own connection could not see."""
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return False
    with _threads_lock:
        existing = _threads.get(weeks)
        if existing is not None and existing.is_alive():
            return True
        thread = threading.Thread(target=_refresh_thread, args=(weeks,), name=f"monitoring-{weeks}w", daemon=True)
        _threads[weeks] = thread
    thread.start()
    return True


def monitoring_refresh_wait(*, weeks: int, timeout: float | None = None) -> bool:
    """Wait for this process's refresh thread of the window (tests, the bench); True once none runs."""
    with _threads_lock:
        thread = _threads.get(weeks)
    if thread is not None:
        thread.join(timeout)
        return not thread.is_alive()
    return True


def _refresh_thread(weeks: int) -> None:
    try:
        monitoring_snapshot_refresh(weeks=weeks)
    except Exception:  # a thread has nobody to raise to; the request stays pending until REQUEST_TIMEOUT_SECONDS
        logger.exception("monitoring refresh of %s weeks failed", weeks)
        MonitoringSnapshot.objects.filter(weeks=weeks).update(requested_at=None)
    finally:
        with _threads_lock:
            if _threads.get(weeks) is threading.current_thread():
                del _threads[weeks]
        connections.close_all()
