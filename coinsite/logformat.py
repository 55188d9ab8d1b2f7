"""Log line formats shared by Django, Celery workers and gunicorn's own loggers.

Every line says when, how bad and which logger, so lines of web workers, inference and training workers interleaved
by a log collector can still be told apart and filtered. `LOG_FORMAT=json` writes one JSON object per line instead,
for collectors (Loki, Elasticsearch, CloudWatch) that index fields rather than parse text. No Django import here:
gunicorn's master process reads these formats before Django is set up.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"

# Attributes every LogRecord has; anything else on a record came from `extra=` and is written as a field of its own.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601, milliseconds), level, logger, message, process, and the
    record's `extra=` fields; a traceback goes into `exception` as one string, so a multi-line stack never splits
    into lines a collector would read as separate events. Values JSON cannot hold (a request object) are written
    as their str()."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def formatter_config(log_format: str) -> dict[str, object]:
    """The dictConfig entry of a formatter for `LOG_FORMAT` ("json" or anything else for text)."""
    if log_format.strip().lower() == "json":
        return {"()": JsonFormatter}
    return {"format": TEXT_FORMAT}
