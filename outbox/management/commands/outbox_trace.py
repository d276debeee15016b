"""``outbox_trace ID``: the causal tree of a workflow, from the event log and its deliveries."""

from datetime import datetime
from uuid import UUID

from django.core.management.base import BaseCommand, CommandError, CommandParser

from outbox.models import Delivery, DeliveryFailure
from outbox.selectors import HandlerRun, TraceNode, Workflow, causal_tree, workflow_named
from outbox.tracing import workflow_resolvers

USAGE = 2  # the exit status of a command given something it cannot act on
INDENT = "    "


class Command(BaseCommand):
    help = (
        "Print the causal tree of a workflow: each event under the event that caused it (causation_id), with "
        "every handler it was delivered to: status, attempts, when the last attempt started and finished, how "
        "long the hop took, and each failed attempt: when, why (handler error, worker lost, time limit, ...) and "
        "its error (only the last one, for deliveries that failed before each failure was recorded). A hop runs "
        "from the event's occurred_at, set as its transaction wrote it (it commits just after), to the delivery's "
        "finished_at, the database's now() in the transaction that marked it done with the handler's effects (so "
        "when that transaction began: the handler's own run is not counted) or dead. Times are UTC. Given an "
        "event id, print the chain of events that led to it and the tree of what it caused. An id that names "
        "nothing exits with 2."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", help=f"A UUID: the id of {_what_ids_name()}.")

    def handle(self, *args, id: str, **options) -> None:
        ident = _uuid(id)
        workflow = _workflow(ident)
        roots = causal_tree(correlation_id=workflow.correlation_id)
        self.stdout.write(_heading(workflow, roots, ident))
        if workflow.event_id is None:
            for root in roots:
                self._tree(root)
            return
        path = next(filter(None, (root.path_to(workflow.event_id) for root in roots)))
        for depth, cause in enumerate(path[:-1]):
            self.stdout.write(f"{INDENT * depth}{_event_line(cause, root=depth == 0)}")
        self._tree(path[-1], depth=len(path) - 1, mark=True)

    def _tree(self, root: TraceNode, *, depth: int = 0, mark: bool = False) -> None:
        for below, node in root.walk():
            indent = INDENT * (depth + below)
            named = "   <== the event asked for" if mark and node is root else ""
            self.stdout.write(f"{indent}{_event_line(node, root=depth + below == 0)}{named}")
            if not node.runs:
                self.stdout.write(f"{indent}  (no handler subscribed)")
            for run in node.runs:
                for line in _run_lines(run):
                    self.stdout.write(f"{indent}  {line}")


def _uuid(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a UUID: give the id of {_what_ids_name()}.", returncode=USAGE) from None


def _workflow(ident: UUID) -> Workflow:
    workflow = workflow_named(ident=ident)
    if workflow is None:
        raise CommandError(f"Nothing has the id {ident}: it is not the id of {_what_ids_name()}.", returncode=USAGE)
    return workflow


def _what_ids_name() -> str:
    """The ids the command takes, in words: the outbox's own, then those of each registered resolver."""
    names = ["an event", "a workflow (its correlation id)", *(_a(r.name) for r in workflow_resolvers.all())]
    return f"{', '.join(names[:-1])} or {names[-1]}"


def _a(name: str) -> str:
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def _heading(workflow: Workflow, roots: list[TraceNode], asked: UUID) -> str:
    nodes = [node for root in roots for _, node in root.walk()]
    statuses = [run.delivery.status for node in nodes for run in node.runs]
    unfinished = sum(status in Delivery.UNFINISHED for status in statuses)
    named = "" if workflow.named_by == "workflow" else f" (of the {workflow.named_by} {asked})"
    return (
        f"Workflow {workflow.correlation_id}{named}: {len(nodes)} events, {len(statuses)} deliveries "
        f"({statuses.count(Delivery.Status.DONE)} done, {statuses.count(Delivery.Status.DEAD)} dead, "
        f"{unfinished} unfinished). Times UTC."
    )


def _event_line(node: TraceNode, *, root: bool) -> str:
    """The event; for a root of the workflow, also its cause when it has one: a request's id, for its logs."""
    event = node.event
    line = f"{event.type} v{event.version} #{event.id} at {_time(event.occurred_at)} event {event.event_id}"
    return line + (f" caused by {event.causation_id}" if root and event.causation_id else "")


def _run_lines(run: HandlerRun) -> list[str]:
    d = run.delivery
    parts = [f"{d.status}", f"{d.attempts} attempt{'' if d.attempts == 1 else 's'}"]
    if run.took_ms is not None:
        parts.append(f"took {run.took_ms:.1f} ms")
    if d.started_at:
        parts.append(f"started {_time(d.started_at)}")
    if d.finished_at:
        parts.append(f"finished {_time(d.finished_at)}")
    lines = [f"-> {d.handler}: {', '.join(parts)}"]
    lines += [f"   ! {_failure(failure)}" for failure in run.failures]
    if d.last_error and not run.failures:  # failed before each attempt's failure was recorded
        failed = f"{run.failed_attempts} failed attempt{'' if run.failed_attempts == 1 else 's'}"
        kind = f" [{d.error_type}]" if d.error_type else ""
        lines.append(f"   ! {failed}; the last{kind}: {d.last_error.splitlines()[0][:300]}")
    return lines


def _failure(failure: DeliveryFailure) -> str:
    counted = "" if failure.counted else " (not counted)"
    kind = f" [{failure.error_type}]" if failure.error_type else ""
    error = (failure.error.splitlines() or [""])[0][:300]
    when = f"at {_time(failure.failed_at)}, {failure.get_cause_display()}"
    return f"attempt {failure.attempt} failed{counted} {when}{kind}: {error}"


def _time(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S.%f}"[:-3]
