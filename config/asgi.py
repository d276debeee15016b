"""The ASGI application: as config/wsgi.py, production settings unless ``DJANGO_SETTINGS_MODULE`` says otherwise."""

import os

from django.core.exceptions import ImproperlyConfigured

from config.checks import startup_refusal
from config.handlers import asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
application = asgi_application()
if refusal := startup_refusal():  # an ASGI server runs no system checks: refuse what `manage.py check` would
    raise ImproperlyConfigured(f"refusing to serve:\n{refusal}")
