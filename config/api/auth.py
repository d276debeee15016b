"""``POST /api/auth/token/``: a username and password for the API token."""

from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from .parsers import FormParser, JSONParser


class TokenThrottle(AnonRateThrottle):
    """Against password guessing: ``API_TOKEN_RATE`` attempts per client address."""

    scope = "auth-token"

    def get_rate(self) -> str:
        return settings.API_TOKEN_RATE


def auth_token_for(*, username: str, password: str) -> Token | None:
    """The user's API token (made at their first sign-in), or None when the credentials are wrong."""
    user = authenticate(username=username, password=password)
    if user is None:
        return None
    token, _ = Token.objects.get_or_create(user=user)
    return token


class TokenCreateApi(APIView):
    """Exchange a username and password for the token to send as ``Authorization: Token <key>``."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [TokenThrottle]
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
        description="Every sign-in returns the same token, until it is revoked in the admin (Auth Token > Tokens).",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token = auth_token_for(**serializer.validated_data)
        if token is None:
            raise exceptions.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: ["Unable to sign in with the username and password given."]}
            )
        return Response(self.OutputSerializer({"token": token.key}).data)
