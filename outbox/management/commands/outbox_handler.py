"""``outbox_handler pause|resume|status NAME``: the operator's switch for one handler."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from outbox import breaker, selectors
from outbox.models import HandlerCircuit


class Command(BaseCommand):
    help = (
        "Pause a handler (nothing is dispatched to it until it is resumed; nothing is lost), resume it "
        "(which also closes its circuit breaker), or show its circuit."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["pause", "resume", "status"])
        parser.add_argument("handler", help="The handler's name, e.g. shipping.book_shipment (see outbox_status).")

    def handle(self, *args, action: str, handler: str, **options) -> None:
        try:
            if action == "pause":
                circuit = breaker.handler_pause(handler=handler)
            elif action == "resume":
                circuit = breaker.handler_resume(handler=handler)
            else:
                circuit = _status(handler)
        except breaker.UnknownHandler as exc:
            raise CommandError(str(exc), returncode=2) from exc
        self.stdout.write(_line(circuit))


def _status(handler: str) -> HandlerCircuit:
    breaker.require_subscribed(handler)
    return next(c for c in selectors.handler_circuits() if c.handler == handler)


def _line(circuit: HandlerCircuit) -> str:
    parts = [circuit.handler, "paused" if circuit.paused else "not paused", f"circuit {circuit.get_state_display()}"]
    if circuit.consecutive_failures:
        parts.append(f"{circuit.consecutive_failures} failures in a row")
    if circuit.state == HandlerCircuit.State.OPEN and circuit.retry_at:
        parts.append(f"probe due at {circuit.retry_at:%Y-%m-%d %H:%M:%S} UTC")
    if circuit.state == HandlerCircuit.State.HALF_OPEN and circuit.probe_delivery_id:
        parts.append(f"probe: delivery {circuit.probe_delivery_id}")
    if circuit.last_error:
        parts.append(f"last error: {circuit.last_error.splitlines()[0]}")
    return "; ".join(parts)
