import json
from typing import Any

from django.conf import settings
from rest_framework import exceptions, parsers

from config.handlers import is_text_encoding


class JSONParser(parsers.JSONParser):
    """JSON with messages a person can act on, refusing what is not strict JSON.

    The size limit is Django's (``DATA_UPLOAD_MAX_MEMORY_SIZE``): DRF hands this
    parser ``request.body``, which refuses a larger body before reading it
    (``RequestDataTooBig``, a 413 through :func:`.errors.as_api_exception`).
    """

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        encoding = request_charset(parser_context)
        raw = stream.read() if stream is not None else b""
        try:
            return json.loads(raw.decode(encoding), parse_constant=_reject_constant)
        except RecursionError as exc:  # the C parser recurses once per level: [[[[...]]]] exhausts the stack
            raise exceptions.ParseError(
                "The body is not valid JSON we can read: its arrays or objects are nested hundreds of levels "
                "deep. Send a flatter document."
            ) from exc
        except ValueError as exc:
            raise exceptions.ParseError(f"The body is not valid JSON: {exc}.") from exc


class FormParser(parsers.FormParser):
    """A URL-encoded form, refused as :class:`JSONParser` refuses a charset it cannot read."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        request_charset(parser_context)
        return super().parse(stream, media_type, parser_context)


def request_charset(parser_context: dict[str, Any] | None) -> str:
    """The ``charset`` of the request's Content-Type, if it names a text encoding; else a 415 naming it.

    Read from the header itself: the request's ``encoding`` leaves out a
    charset nobody knows, or one that is no text encoding (base64, bz2_codec),
    and the body must not be read as UTF-8 when its sender says it is not.
    """
    context = parser_context or {}
    request = context.get("request")
    charset = request.content_params.get("charset") if request is not None else None
    encoding = charset or context.get("encoding") or settings.DEFAULT_CHARSET
    if not is_text_encoding(encoding):
        raise exceptions.UnsupportedMediaType(
            encoding,
            detail=f'The charset "{encoding}" in the Content-Type header is not a text encoding we can read: '
            "send the body as UTF-8 (charset=utf-8, or no charset).",
        )
    return encoding


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")
