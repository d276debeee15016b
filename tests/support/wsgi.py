"""Requests through the project's own WSGI application, as gunicorn hands them over.

Django's test client builds its requests itself (with Django's request class),
so what happens between the server and the first middleware is only seen
through the application gunicorn runs: ``config.handlers.WSGIHandler``.
"""

import functools
import io
import sys
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from config.handlers import WSGIHandler


@dataclass(frozen=True)
class Answer:
    status_code: int
    headers: dict[str, str]
    content: bytes


def call(
    method: str, path: str, *, query: str = "", body: bytes = b"", content_type: str = "", **headers: str
) -> Answer:
    """One request: ``path`` and ``query`` percent-encoded (any bytes), ``headers`` as ``HTTP_*`` keys."""
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("iso-8859-1"),  # PEP 3333: the raw bytes, as latin-1
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        **({"CONTENT_TYPE": content_type} if content_type else {}),
        **headers,
    }
    started: list = []
    chunks = _application()(
        environ, lambda status, response_headers, exc_info=None: started.append((status, response_headers))
    )
    try:
        content = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    status, response_headers = started[0]
    return Answer(int(status.split()[0]), dict(response_headers), content)


@functools.cache
def _application() -> WSGIHandler:
    """One for the session: loading the middleware takes ~40 ms (WhiteNoise indexes the static files)."""
    return WSGIHandler()
