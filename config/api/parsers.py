import json
from typing import Any

from django.conf import settings
from rest_framework import exceptions, parsers

from .errors import RequestTooLarge


class JSONParser(parsers.JSONParser):
    """JSON with a size limit (``DATA_UPLOAD_MAX_MEMORY_SIZE``), and messages a person can act on.

    DRF parses the request stream directly, so Django's own limit, which only
    guards ``request.body``, never applies: without this a client could make
    the server read and parse a body of any size.
    """

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(limit)
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(raw.decode(encoding), parse_constant=_reject_constant)
        except ValueError as exc:
            raise exceptions.ParseError(f"The body is not valid JSON: {exc}.") from exc


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")
