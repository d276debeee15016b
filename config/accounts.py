"""Signing in and resetting a password, throttled: the shop's and the admin's sign-in forms, password reset.

Sign-in failures are counted by django-axes (settings: AUTHENTICATION BACKENDS AND
LOCKOUT) in the default cache, which every process shares: ``LOGIN_FAILURE_LIMIT``
failures from one client address, or for one username, lock that address or
username out of every sign-in door (these forms and ``POST /api/auth/token/``) for
``LOGIN_LOCKOUT_MINUTES``, counted again from each attempt made while locked out.
The form then says so, and when to come back, with status 429.

Password reset is limited per client address (``PASSWORD_RESET_RATE``) and per
e-mail address asked for (``PASSWORD_RESET_EMAIL_RATE``), so that it cannot be used
to flood a mailbox; the limit applies whether or not an account has that address,
so it tells nothing about which addresses have one.
"""

import hashlib
import math
from typing import Any

from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from rest_framework.throttling import SimpleRateThrottle

from config.api.throttling import seconds_to_wait


def lockout_seconds() -> int:
    """How long a lockout lasts from the attempt that met it (each attempt while locked out starts it again)."""
    return max(1, math.ceil(get_cool_off().total_seconds()))


def lockout_message() -> str:
    minutes = math.ceil(lockout_seconds() / 60)
    return (
        "Too many failed sign-ins for this account or from your address: "
        f"try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )


class LockoutMessage(AuthenticationForm):
    """A sign-in form that, for a locked-out client, says so and when to come back, not "wrong password"."""

    def get_invalid_login_error(self) -> ValidationError:
        if getattr(self.request, "axes_locked_out", False):
            return ValidationError(lockout_message(), code="locked_out")
        return super().get_invalid_login_error()


class SignInForm(LockoutMessage, AuthenticationForm):
    """The shop's sign-in form."""


class AdminSignInForm(LockoutMessage, AdminAuthenticationForm):
    """The admin's sign-in form."""


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: the view's own answer, which says why and for how long, as a 429.

    The sign-in forms show :func:`lockout_message` as their error and the
    API answers ``throttled``; this only gives either the status and
    ``Retry-After`` (django-axes' own answer would be a bare page).
    """
    response = original_response if isinstance(original_response, HttpResponse) else HttpResponse(lockout_message())
    response.status_code = 429
    response["Retry-After"] = str(lockout_seconds())
    return response


class PasswordResetAddressThrottle(SimpleRateThrottle):
    """``PASSWORD_RESET_RATE`` password reset requests per client address."""

    scope = "password-reset-address"

    def get_rate(self) -> str:
        return settings.PASSWORD_RESET_RATE

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class PasswordResetEmailThrottle(SimpleRateThrottle):
    """``PASSWORD_RESET_EMAIL_RATE`` password reset requests per e-mail address asked for, from anywhere."""

    scope = "password-reset-email"

    def __init__(self, email: str) -> None:
        self.email = email
        super().__init__()

    def get_rate(self) -> str:
        return settings.PASSWORD_RESET_EMAIL_RATE

    def get_cache_key(self, request: Any, view: Any) -> str:
        ident = hashlib.sha256(self.email.strip().casefold().encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class PasswordResetView(auth_views.PasswordResetView):
    """Django's password reset page, refusing (429, with when to come back) past either limit."""

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        for throttle in (PasswordResetAddressThrottle(), PasswordResetEmailThrottle(form.cleaned_data["email"])):
            wait = seconds_to_wait(throttle, self.request)
            if wait is not None:
                return self._refused(form, wait)
        return super().form_valid(form)

    def _refused(self, form: PasswordResetForm, wait: int) -> HttpResponse:
        minutes = math.ceil(wait / 60)
        form.add_error(  # on the field: the admin's template, which this page uses, shows only field errors
            "email",
            "Too many password reset requests from your address or for this e-mail address: "
            f"try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        )
        response = self.form_invalid(form)
        response.status_code = 429
        response["Retry-After"] = str(wait)
        return response


class SignInView(auth_views.LoginView):
    authentication_form = SignInForm
