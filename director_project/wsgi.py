"""WSGI entry point. Servers that import this first must have patched with gevent already
(``manage.py serve`` and gunicorn.conf.py do)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "director_project.settings")

application = get_wsgi_application()
