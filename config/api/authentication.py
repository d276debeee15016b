from typing import Any

from rest_framework import authentication, exceptions


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's ``Authorization: Token <key>``, refusing a key with a NUL before the database sees it.

    No key holds one (PostgreSQL text cannot), and asking for one is a
    database error, not a miss: the answer must be the same 401 as for any
    unknown key.
    """

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        if "\x00" in key:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(key)
