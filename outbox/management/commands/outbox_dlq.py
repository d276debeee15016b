from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet

from outbox.models import UNKNOWN_TYPE_HANDLER, Delivery
from outbox.selectors import DeadLetterGroup, dead_letter_group, dead_letter_groups, dead_letters, dead_letters_of_group
from outbox.services import (
    dead_letter_discard,
    dead_letter_group_discard,
    dead_letter_group_retry,
    dead_letter_retry,
)
from outbox.subscriptions import subscriptions

USAGE = 2  # the exit status of a command given something it cannot act on; nothing was changed


class Command(BaseCommand):
    help = "List the dead-letter queue (one by one, or grouped by cause), or retry or discard dead deliveries."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="List dead deliveries with their last error.")
        listing.add_argument("--handler")
        groups = sub.add_parser("groups", help="List dead deliveries grouped by handler and cause, largest first.")
        groups.add_argument("--handler")
        for action, does in (("retry", "Retry"), ("discard", "Discard (kept, marked resolved)")):
            command = sub.add_parser(action, help=f"{does} dead deliveries: one, one handler's, one group's, or all.")
            which = command.add_mutually_exclusive_group(required=True)
            which.add_argument("--id", type=int, dest="delivery_id")
            which.add_argument("--handler")
            which.add_argument("--group", help="A group's id, as `outbox_dlq groups` lists it.")
            which.add_argument("--all", action="store_true")
            command.add_argument("--limit", type=int, help="With --group: only this many, the oldest first.")

    def handle(self, *args, action: str, **options) -> None:
        if action == "list":
            self._list(options["handler"])
        elif action == "groups":
            self._groups(options["handler"])
        elif options["group"] is not None:
            self._act_on_group(action, _group(options["group"]), _limit(options["limit"]))
        else:
            if options["limit"] is not None:
                raise CommandError("--limit goes with --group only; nothing was changed.", returncode=USAGE)
            self._act(action, _letters(options))

    def _list(self, handler: str | None) -> None:
        rows = dead_letters(handler=handler)
        for d in rows:
            error = d.last_error.splitlines()[0] if d.last_error else ""
            self.stdout.write(f"{d.id:>8}  {d.handler:<40} {d.event.type:<35} attempts={d.attempts}  {error}")
        self.stdout.write(f"{rows.count()} dead deliveries")

    def _groups(self, handler: str | None) -> None:
        groups = list(dead_letter_groups(handler=handler))
        self.stdout.write(
            f"{'group':<12}  {'handler':<32} {'type':<36} {'count':>7}  {'first seen':<19}  {'last seen':<19}  pattern"
        )
        for g in groups:
            seen = [f"{t:%Y-%m-%d %H:%M:%S}" if t else "-" for t in (g.first_seen, g.last_seen)]
            self.stdout.write(
                f"{g.id:<12}  {g.handler:<32} {g.error_type or '-':<36} {g.count:>7}  "
                f"{seen[0]:<19}  {seen[1]:<19}  {g.error_pattern}"
            )
        self.stdout.write(f"{len(groups)} groups, {sum(g.count for g in groups)} dead deliveries")

    def _act_on_group(self, action: str, group: DeadLetterGroup, limit: int | None) -> None:
        if action == "retry":
            count = dead_letter_group_retry(group=group, limit=limit)
        else:
            count = dead_letter_group_discard(group=group, limit=limit, user=None)
        remaining = dead_letters_of_group(group).count()
        self.stdout.write(
            f"{'Retried' if action == 'retry' else 'Discarded'} {count} of {count + remaining} dead deliveries "
            f"of {group.handler} ({group.error_type or 'cause not recorded'}); {remaining} remain"
        )

    def _act(self, action: str, letters: QuerySet[Delivery]) -> None:
        if action == "retry":
            self.stdout.write(f"{dead_letter_retry(deliveries=letters)} dead deliveries sent round again")
        else:
            count = dead_letter_discard(deliveries=letters, user=None)
            self.stdout.write(f"{count} dead deliveries discarded (kept, marked resolved)")


def _letters(options: dict) -> QuerySet[Delivery]:
    if options["delivery_id"] is not None:
        return _one_letter(options["delivery_id"])
    if options["handler"] is not None:
        return _handler_letters(options["handler"])
    return dead_letters()


def _one_letter(delivery_id: int) -> QuerySet[Delivery]:
    delivery = Delivery.objects.filter(id=delivery_id).first() if 0 < delivery_id < 2**63 else None
    if delivery is None:
        why = "there is no such delivery"
    elif delivery.status != Delivery.Status.DEAD:
        why = f"it is {delivery.status}"
    elif delivery.resolved_at is not None:
        why = f"it was discarded at {delivery.resolved_at:%Y-%m-%d %H:%M:%S} UTC"
    else:
        return Delivery.objects.filter(id=delivery_id)
    raise CommandError(f"Delivery {delivery_id} is not a dead letter: {why}. Nothing was changed.", returncode=USAGE)


def _handler_letters(handler: str) -> QuerySet[Delivery]:
    letters = dead_letters(handler=handler)
    known = subscriptions.get(handler) is not None or handler == UNKNOWN_TYPE_HANDLER
    if not known and not letters.exists():
        raise CommandError(
            f"No handler named {handler!r} is subscribed, and none has dead letters. Nothing was changed.",
            returncode=USAGE,
        )
    return letters


def _group(group_id: str) -> DeadLetterGroup:
    group = dead_letter_group(group_id=group_id)
    if group is None:
        raise CommandError(
            f"There is no dead-letter group {group_id} (`outbox_dlq groups` lists them). Nothing was changed.",
            returncode=USAGE,
        )
    return group


def _limit(limit: int | None) -> int | None:
    if limit is not None and limit < 1:
        raise CommandError(f"--limit is at least 1, not {limit}; leave it out for all.", returncode=USAGE)
    return limit
