"""``SESSION_ENGINE``: Django's database sessions, for a cookie that names no possible session."""

from django.contrib.sessions.backends import db


class SessionStore(db.SessionStore):
    """A session cookie whose key holds a NUL is no session, as an unknown key is.

    A quoted cookie value may carry one (``sessionid="abcdefgh\\000"``), and
    looking it up is a database error (PostgreSQL text cannot hold NUL), not a miss.
    """

    # SessionBase._validate_session_key is Django's (the stubs leave it out).
    def _validate_session_key(self, key: str | None) -> bool:
        return key is not None and "\x00" not in key and bool(super()._validate_session_key(key))  # type: ignore[misc]
