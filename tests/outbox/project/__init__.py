"""The outbox's own minimal Django project: the outbox, its probe app and what they need; nothing of the shop.

``python -m pytest tests/outbox --ds=tests.outbox.project.settings`` runs the outbox's suite in it,
proving that the outbox needs no context and no ``config``. Loading its settings loads its Celery app,
as ``config`` does the shop's.
"""

from .celery_app import app as celery_app

__all__ = ("celery_app",)
