"""WSGI entry point (gunicorn coinsite.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

from coinsite.wsgi_input import large_block_input

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coinsite.settings")
application = large_block_input(get_wsgi_application())
