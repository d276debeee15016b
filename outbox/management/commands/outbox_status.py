"""``outbox_status``: per handler, the work waiting, the dead letters and the circuit; with ``--fail-on``, a probe."""

import re
from argparse import ArgumentTypeError
from dataclasses import dataclass
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser

from outbox.models import HandlerCircuit
from outbox.selectors import HandlerStatus, handler_circuits, handler_statuses

DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}
CONDITIONS = "dead, dead=N, oldest-pending=DURATION (e.g. 60s, 5m), breaker-open, paused"


@dataclass(frozen=True)
class FailOn:
    dead: int | None = None  # fail when a handler has more dead letters than this
    oldest_pending: timedelta | None = None
    breaker_open: bool = False
    paused: bool = False


class Command(BaseCommand):
    help = (
        "Print, per handler, the pending, dispatched and dead deliveries, the oldest pending age and the circuit. "
        "With --fail-on, exit 1 with a one-line reason when a condition holds (for cron and health probes)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fail-on",
            type=_fail_on,
            metavar="CONDITIONS",
            help=f"Comma-separated: {CONDITIONS}. Exit 1 if any holds, 0 if none; nothing is printed but the reason.",
        )

    def handle(self, *args, fail_on: FailOn | None, **options) -> None:
        statuses = handler_statuses()
        circuits = {c.handler: c for c in handler_circuits()}
        if fail_on is None:
            self._table(statuses, circuits)
            return
        reasons = _reasons(fail_on, statuses, circuits)
        if reasons:
            raise CommandError("; ".join(reasons), returncode=1)
        self.stdout.write("ok")

    def _table(self, statuses: list[HandlerStatus], circuits: dict[str, HandlerCircuit]) -> None:
        header = f"{'handler':<45} {'pending':>8} {'dispatched':>10} {'dead':>6} {'oldest pending':>15}  circuit"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for row in statuses:
            age = f"{row.oldest_pending_age.total_seconds():.1f}s" if row.oldest_pending_age else "-"
            circuit = _describe(circuits.get(row.handler))
            self.stdout.write(
                f"{row.handler:<45} {row.pending:>8} {row.dispatched:>10} {row.dead:>6} {age:>15}  {circuit}"
            )


def _describe(circuit: HandlerCircuit | None) -> str:
    if circuit is None:
        return "-"
    text = "paused, " if circuit.paused else ""
    text += circuit.get_state_display()
    if circuit.state == HandlerCircuit.State.OPEN and circuit.retry_at:
        text += f" until {circuit.retry_at:%H:%M:%S}"
    if circuit.consecutive_failures:
        text += f" ({circuit.consecutive_failures} failures in a row)"
    return text


def _reasons(fail_on: FailOn, statuses: list[HandlerStatus], circuits: dict[str, HandlerCircuit]) -> list[str]:
    reasons = []
    if fail_on.dead is not None:
        dead = [f"{s.handler} ({s.dead})" for s in statuses if s.dead > fail_on.dead]
        if dead:
            reasons.append(f"dead letters: {', '.join(dead)}")
    if fail_on.oldest_pending is not None:
        limit = fail_on.oldest_pending
        late = [f"{s.handler} ({s.oldest_pending_age.total_seconds():.0f}s)" for s in statuses
                if s.oldest_pending_age and s.oldest_pending_age > limit]  # fmt: skip
        if late:
            reasons.append(f"oldest pending over {limit.total_seconds():g}s: {', '.join(late)}")
    if fail_on.breaker_open:
        opened = [f"{c.handler} ({c.get_state_display()})" for c in circuits.values()
                  if c.state != HandlerCircuit.State.CLOSED]  # fmt: skip
        if opened:
            reasons.append(f"circuit not closed: {', '.join(opened)}")
    if fail_on.paused and (paused := [c.handler for c in circuits.values() if c.paused]):
        reasons.append(f"paused: {', '.join(paused)}")
    return reasons


def _fail_on(value: str) -> FailOn:
    """Parse ``dead,oldest-pending=60s,breaker-open``; argparse exits 2 with the message of a bad one."""
    fields: dict = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, _, argument = part.partition("=")
        if name == "dead":
            fields["dead"] = _count(argument) if argument else 0
        elif name == "oldest-pending" and argument:
            fields["oldest_pending"] = _duration(argument)
        elif name in ("breaker-open", "paused") and not argument:
            fields[name.replace("-", "_")] = True
        else:
            raise ArgumentTypeError(f"unknown condition {part!r}; the conditions are: {CONDITIONS}")
    if not fields:
        raise ArgumentTypeError(f"name at least one condition: {CONDITIONS}")
    return FailOn(**fields)


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ArgumentTypeError(f"dead=N takes a whole number of dead letters to allow, not {text!r}")
    return int(text)


def _duration(text: str) -> timedelta:
    match = DURATION.match(text) if text.isascii() else None
    if not match:
        raise ArgumentTypeError(f"{text!r} is not a duration: write e.g. 60s, 5m, 1h or 500ms")
    return timedelta(seconds=float(match[1]) * UNITS[match[2]])
