#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

Local settings by default, as cookiecutter-django's manage.py picks `config.settings.local`: a developer's
`python manage.py <anything>` (the README's `drf_create_token`, `shell`, `check`) runs with DEBUG on and the dev key
instead of ending in "Set the DJANGO_SECRET_KEY environment variable". One settings module still reads everything
from the environment (coinsite/settings.py); this only gives DJANGO_DEBUG a default where nothing set it. The
production entry points never come through here with it unset: gunicorn imports coinsite.wsgi, Celery
coinsite.celery (both default to DEBUG off), and the Procfile's `release` step sets DJANGO_DEBUG=0 itself
(tests/test_settings.py runs each of them).
"""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coinsite.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")  # local by default; DJANGO_DEBUG=0 runs production settings
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
