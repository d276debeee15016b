"""``POST /api/auth/token/``: a username and password for the API token.

Guessing is slowed three ways, each counted where every process sees it: DRF's throttles per client
address (``API_TOKEN_RATE``) and per username tried (``API_TOKEN_USERNAME_RATE``), in the cache; and
django-axes' lockout, shared with the shop's and the admin's sign-in forms (``LOGIN_FAILURE_LIMIT``
failures lock the username and the address out for ``LOGIN_LOCKOUT_MINUTES``; config/accounts.py).
"""

import hashlib
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.hashers import check_password
from django.http import HttpRequest
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle
from rest_framework.views import APIView

from config.accounts import lockout_message

from .parsers import FormParser, JSONParser


class TokenThrottle(AnonRateThrottle):
    """Against password guessing: ``API_TOKEN_RATE`` attempts per client address."""

    scope = "auth-token"

    def get_rate(self) -> str:
        return settings.API_TOKEN_RATE


class TokenUsernameThrottle(SimpleRateThrottle):
    """Against guessing one account's password from many addresses: ``API_TOKEN_USERNAME_RATE`` per username.

    It also lets anyone slow down one person's API sign-in by spending their
    budget: the accepted price of a per-account limit (the shop's pages have
    the same, through the lockout).
    """

    scope = "auth-token-username"

    def get_rate(self) -> str:
        return settings.API_TOKEN_USERNAME_RATE

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        data = request.data
        username = data.get("username") if isinstance(data, Mapping) else None
        if not isinstance(username, str) or not username:
            return None  # nothing to count by: the serializer refuses it
        ident = hashlib.sha256(username.encode(errors="replace")).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


def auth_token_for(*, request: HttpRequest, username: str, password: str) -> Token | None:
    """The user's API token (made at their first sign-in), or None when the credentials are wrong.

    ``request`` lets django-axes count a failure and refuse a locked-out client.
    """
    user = authenticate(request, username=username, password=password)
    if user is None:
        return None
    return token_of(user)


def token_of(user: Any) -> Token:
    """The user's token, made if they have none: two first sign-ins at once both get the one that was made.

    Race-safe as it stands, and kept so (tests/api/test_auth_token.py): ``get_or_create``
    inserts in a savepoint of its own and, when the insert loses to a concurrent one
    (the token's user is unique), reads the winner's row instead of raising
    ``IntegrityError`` (under READ COMMITTED, the isolation this project runs at).
    """
    return Token.objects.get_or_create(user=user)[0]


def revoke_token_on_password_change(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    """``pre_save`` of the user model: a new password revokes the API token; the next sign-in makes a new one.

    Every way a password changes (the admin, the password change and reset
    pages, ``changepassword``) calls ``set_password``, which keeps the new
    password in clear until the save. Setting the same password again is no
    change; neither is Django storing a new hash of it at a sign-in (its
    hasher upgraded), which it saves without that clear copy.
    """
    new_password = getattr(instance, "_password", None)
    if new_password is None or instance.pk is None:
        return
    if update_fields is not None and "password" not in update_fields:
        return
    stored = type(instance)._default_manager.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is not None and not check_password(new_password, stored):
        Token.objects.filter(user_id=instance.pk).delete()


class TokenCreateApi(APIView):
    """Exchange a username and password for the token to send as ``Authorization: Token <key>``."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [TokenThrottle, TokenUsernameThrottle]
    parser_classes = [JSONParser, FormParser]

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})

        class Meta:
            ref_name = "Credentials"

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`.")

        class Meta:
            ref_name = "Token"

    @extend_schema(
        operation_id="auth_token_create",
        tags=["auth"],
        request=InputSerializer,
        responses={200: OutputSerializer},
        description="Every sign-in returns the same token, until it is revoked in the admin (Auth Token > Tokens) "
        "or the password changes. Too many attempts answer 429: per client address, per username, and after "
        "repeated failures a lockout of the username and the address, with `Retry-After`.",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token = auth_token_for(request=request._request, **serializer.validated_data)
        if token is None and getattr(request._request, "axes_locked_out", False):
            raise exceptions.Throttled(detail=lockout_message())  # Retry-After: AXES_LOCKOUT_CALLABLE adds it
        if token is None:
            raise exceptions.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: ["Unable to sign in with the username and password given."]}
            )
        return Response(self.OutputSerializer({"token": token.key}).data)
