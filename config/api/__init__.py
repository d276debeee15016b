"""The REST plumbing every context's ``api.py`` shares.

- :mod:`.errors`: the one JSON error shape, :class:`~.errors.Conflict` (409), the exception handler.
- :mod:`.schema`: :class:`~.schema.AutoSchema`, which documents each route's errors; :func:`~.schema.error_responses`.
- :mod:`.permissions`: :func:`~.permissions.has_perm`, a route that needs a model permission (not staff status).
- :mod:`.fields`: :class:`~.fields.AwareDateTimeField`, a time that must say its UTC offset.
- :mod:`.pagination`: ``{count, next, previous, results}`` and :func:`~.pagination.paginated_response`.
- :mod:`.fields`: :class:`~.fields.AwareDateTimeField`, a time that must carry its UTC offset (``as_of``).
- :mod:`.parsers`: strict JSON with clear messages, and a charset that is a text encoding (for forms too).
- :mod:`.auth`: ``POST /api/auth/token/``; :mod:`.authentication`: the ``Authorization: Token <key>`` check.

This package imports nothing itself: DRF imports the classes its settings
name while ``rest_framework.views`` is still loading, so each module here
must be importable on its own.
"""
