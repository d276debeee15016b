"""The WSGI application (``gunicorn config.wsgi``).

Without ``DJANGO_SETTINGS_MODULE`` it runs the production settings, which
refuse to start without ``SECRET_KEY`` and the rest a deployment must set:
never the development settings by accident. ``manage.py`` keeps ``local``
for a developer's machine.
"""

import os

from django.core.exceptions import ImproperlyConfigured

from config.checks import startup_refusal
from config.handlers import wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
application = wsgi_application()
if refusal := startup_refusal():  # gunicorn runs no system checks: refuse what `manage.py check` would
    raise ImproperlyConfigured(f"refusing to serve:\n{refusal}")
