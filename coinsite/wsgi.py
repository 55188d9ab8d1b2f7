"""WSGI entry point (gunicorn coinsite.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coinsite.settings")
application = get_wsgi_application()
