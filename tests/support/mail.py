"""A real SMTP server for tests: it records every message it accepts, and can go down or hang on demand.

Built on aiosmtpd, it runs in a thread of the test process on a free
loopback port. Code in the test process reaches it through ``settings()``
(Django settings overrides); worker processes reach it through ``env()``
(their environment, e.g. ``start_worker(**sink.env())``). Mail is counted
here, where it arrives, not in the sender's memory::

    with MailSink() as sink:
        worker = start_worker(**sink.env())
        ...
        wait_for(lambda: sink.count(order_id=order.id) == 1)
"""

import contextlib
import email
import email.policy
import logging
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from django.test import override_settings

from tests.support.processes import wait_for

HOST = "127.0.0.1"
logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command at INFO


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the server accepted it: envelope recipients and parsed headers."""

    mail_from: str
    recipients: tuple[str, ...]
    message: EmailMessage = field(repr=False)

    @property
    def message_id(self) -> str:
        return self._header("Message-ID")

    @property
    def order_id(self) -> str:
        return self._header("X-Order-ID")

    @property
    def kind(self) -> str:
        """The notification kind, the first part of the project's Message-ID (``<kind.event-id@domain>``)."""
        return self.message_id.strip("<>").partition(".")[0]

    @property
    def subject(self) -> str:
        return self._header("Subject")

    @property
    def body(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()

    def _header(self, name: str) -> str:
        """A header's value without the folding whitespace a long header is sent with."""
        return " ".join(str(self.message[name] or "").split())


class _Recorder:
    """The aiosmtpd handler: record the message, let the test react, then answer 250."""

    def __init__(self, sink: "MailSink") -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        mail = ReceivedMail(mail_from=envelope.mail_from, recipients=tuple(envelope.rcpt_tos), message=message)
        self.sink._record(mail)
        return "250 Message accepted for delivery"


class MailSink:
    """An SMTP server on ``127.0.0.1:<port>`` that records what it receives.

    ``down()`` closes the port (connections are refused), ``hang()`` keeps
    accepting connections but never says a word (a client waits out its
    timeout), ``up()`` answers again on the same port. ``on_message`` is
    called in the server's thread with each message after it is recorded and
    before the server answers 250: a test can make the sender crash there.
    """

    def __init__(self, *, on_message: Callable[[ReceivedMail], None] | None = None) -> None:
        self.port = _free_port()
        self.on_message = on_message
        self._received: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self._silent: socket.socket | None = None

    # lifecycle

    def start(self) -> "MailSink":
        self.up()
        return self

    def stop(self) -> None:
        self._stop_answering()
        self._stop_hanging()

    def __enter__(self) -> "MailSink":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def up(self) -> None:
        """Answer SMTP on the sink's port (again)."""
        self._stop_hanging()
        if self._controller is None:
            self._controller = Controller(_Recorder(self), hostname=HOST, port=self.port, ready_timeout=10)
            self._controller.start()

    def down(self) -> None:
        """Stop listening: every connection is refused until ``up()``."""
        self._stop_answering()
        self._stop_hanging()

    def hang(self) -> None:
        """Accept TCP connections and never answer (no greeting): a sender waits out its EMAIL_TIMEOUT."""
        self._stop_answering()
        if self._silent is None:
            silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            silent.bind((HOST, self.port))
            silent.listen(64)  # the kernel completes the handshakes; nobody ever reads
            self._silent = silent

    # where senders find it

    @property
    def url(self) -> str:
        return f"smtp://{HOST}:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment for a child process: the test settings read TEST_EMAIL_URL, the others EMAIL_URL."""
        return {"TEST_EMAIL_URL": self.url, "EMAIL_URL": self.url}

    def settings(self, **extra: object) -> override_settings:
        """Django settings that send this process's mail here (usable as a decorator or context manager)."""
        return override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST=HOST,
            EMAIL_PORT=self.port,
            EMAIL_USE_TLS=False,
            EMAIL_USE_SSL=False,
            EMAIL_HOST_USER="",
            EMAIL_HOST_PASSWORD="",
            **extra,
        )

    # what arrived

    @property
    def received(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._received)

    def count(self, *, order_id: object = None, kind: str | None = None, message_id: str | None = None) -> int:
        """Messages received, optionally only those of one order (X-Order-ID), kind or Message-ID."""
        return len(self.matching(order_id=order_id, kind=kind, message_id=message_id))

    def matching(
        self, *, order_id: object = None, kind: str | None = None, message_id: str | None = None
    ) -> list[ReceivedMail]:
        return [
            mail
            for mail in self.received
            if (order_id is None or mail.order_id == str(order_id))
            and (kind is None or mail.kind == kind)
            and (message_id is None or mail.message_id == message_id)
        ]

    def per_order_and_kind(self) -> Counter[tuple[str, str]]:
        """How many messages each (order, kind) received: exactly one each when mail is sent once."""
        return Counter((mail.order_id, mail.kind) for mail in self.received)

    def wait_for_count(self, expected: int, *, timeout: float = 30.0, **match: object) -> list[ReceivedMail]:
        """Wait until ``count(**match)`` reaches ``expected``; return those messages."""
        wait_for(
            lambda: self.count(**match) >= expected,
            timeout=timeout,
            what=lambda: f"{expected} messages matching {match} at the sink; it has {self.received}",
        )
        return self.matching(**match)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    def _record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._received.append(mail)
        if self.on_message is not None:
            self.on_message(mail)

    def _stop_answering(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _stop_hanging(self) -> None:
        if self._silent is not None:
            with contextlib.suppress(OSError):
                self._silent.close()
            self._silent = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]
