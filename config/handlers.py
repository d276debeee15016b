"""The WSGI and ASGI applications: Django's, with requests that only ever decode with a text encoding.

Django takes a request's ``charset`` if ``codecs.lookup()`` knows it, and
that includes codecs which are not text encodings (base64, bz2_codec, rot13).
Setting it decodes the query string with it at once, while the request is
being built, before any middleware: ``Content-Type: text/plain;
charset=base64`` and any query string made a LookupError, a 500 that no
error handler saw. Here such a charset is ignored, as Django ignores one it
does not know; a parser that reads a body refuses it (415).
"""

import django
from django.core.handlers import asgi, wsgi
from django.http import HttpRequest
from django.utils.http import parse_header_parameters

from config import telemetry


def is_text_encoding(name: str) -> bool:
    try:
        "".encode(name)  # unlike codecs.lookup(), refuses codecs that are not text encodings
    except (LookupError, UnicodeError):
        return False
    return True


class _TextCharsetOnly(HttpRequest):
    def _set_content_type_params(self, meta: dict) -> None:
        self.content_type, self.content_params = parse_header_parameters(meta.get("CONTENT_TYPE", ""))
        charset = self.content_params.get("charset")
        if charset and is_text_encoding(charset):
            self.encoding = charset


class WSGIRequest(_TextCharsetOnly, wsgi.WSGIRequest):
    pass


class ASGIRequest(_TextCharsetOnly, asgi.ASGIRequest):
    pass


class WSGIHandler(wsgi.WSGIHandler):
    request_class = WSGIRequest


class ASGIHandler(asgi.ASGIHandler):
    request_class = ASGIRequest


def wsgi_application() -> WSGIHandler:
    """As ``django.core.wsgi.get_wsgi_application()``, with :class:`WSGIRequest` (traced with ``OTEL_ENABLED``)."""
    django.setup(set_prefix=False)
    telemetry.configure()  # before the handler builds its middleware chain, which Django's instrumentation joins
    return WSGIHandler()


def asgi_application() -> ASGIHandler:
    """As ``django.core.asgi.get_asgi_application()``, with :class:`ASGIRequest` (traced with ``OTEL_ENABLED``)."""
    django.setup(set_prefix=False)
    telemetry.configure()
    return ASGIHandler()
