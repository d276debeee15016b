"""Probe handlers: each records an Effect row in the delivery's transaction.

Side channels that must survive a rolled-back attempt (how often a handler
started, how often the flaky one failed) go to Redis, which no rollback undoes.
"""

import builtins
import os
import signal
import time
import urllib.request

import redis
from django.conf import settings

from outbox import Permanent, RetryLater
from outbox.events import Envelope
from outbox.subscriptions import Subscription

from .effects import record_effect
from .events import Archived, Broke, Called, Crashed, Flaked, Hopped, Jammed, Judged, Pinged, Priced, Slept, Stepped
from .models import Effect, Switch


def side_channel() -> redis.Redis:
    return redis.Redis.from_url(settings.PROBE_SIDE_CHANNEL_URL)


def _record(handler: str, event, envelope: Envelope, **fields) -> None:
    record_effect(handler, envelope.event_id, str(event.thing_id), **fields)


def record_a(event: Pinged, envelope: Envelope) -> None:
    _record("a", event, envelope, seq=event.seq)


def record_b(event: Pinged, envelope: Envelope) -> None:
    _record("b", event, envelope, seq=event.seq)


def record_c(event: Pinged, envelope: Envelope) -> None:
    _record("c", event, envelope, seq=event.seq)


def record_price(event: Priced, envelope: Envelope) -> None:
    note = f"{type(event.price.amount).__name__}:{event.price.amount}:{event.price.currency}"
    _record("price", event, envelope, note=note)


def record_step(event: Stepped, envelope: Envelope) -> None:
    _step("step", event, envelope)


def record_hop(event: Hopped, envelope: Envelope) -> None:
    _step("hop", event, envelope)


def _step(handler: str, event: Stepped | Hopped, envelope: Envelope) -> None:
    """A step that says ``fail`` fails until switch ``steps-mended`` is turned on."""
    time.sleep((event.seq % 3) * 0.005)  # uneven work, so that unordered runs would interleave
    if event.fail and not Switch.objects.filter(name="steps-mended", on=True).exists():
        raise RuntimeError(f"step {event.seq} of {event.thing_id} cannot be recorded")
    _record(handler, event, envelope, seq=event.seq)


def flaky(event: Flaked, envelope: Envelope) -> None:
    side_channel().rpush(f"probe:flaky-times:{envelope.event_id}", time.time())
    failures = side_channel().incr(f"probe:flaky:{envelope.event_id}")
    if failures <= event.fail_times:
        raise RuntimeError(f"flaky failure {failures} of {event.fail_times}")
    _record("flaky", event, envelope)


def slow(event: Slept, envelope: Envelope) -> None:
    """Sleeps on its first start only, so a test can kill the worker running it."""
    starts = side_channel().rpush(f"probe:slow:{envelope.event_id}", os.getpid())
    if starts == 1:
        time.sleep(event.seconds)
    _record("slow", event, envelope)


def breakable(event: Broke, envelope: Envelope) -> None:
    if Switch.objects.filter(name="broken", on=True).exists():
        raise ValueError("the probe is broken (switch 'broken' is on)")
    _record("breakable", event, envelope)


class BeltMissing(LookupError):
    pass


def jammable(event: Jammed, envelope: Envelope) -> None:
    """Two causes of failure while switch ``jammed`` is on; their messages differ in ids and numbers only."""
    if Switch.objects.filter(name="jammed", on=True).exists():
        if event.part == "belt":
            raise BeltMissing(f"belt 'B-{event.number}' of {event.thing_id} is missing")
        raise RuntimeError(f"gear {event.number} of {event.thing_id} is jammed")
    _record("jammable", event, envelope, note=event.part)


def crash(event: Crashed, envelope: Envelope) -> None:
    """A poison for the events that say so: it takes its worker process down with it, every time."""
    if event.how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if event.how == "exit":
        os._exit(3)
    _record("crash", event, envelope)


DOWNSTREAM_URL_KEY = "probe:downstream-url"


def call_downstream(event: Called, envelope: Envelope) -> None:
    """Calls the test's HTTP service, whose address the test put in the side channel; it may be stopped."""
    url = side_channel().get(DOWNSTREAM_URL_KEY).decode()
    with urllib.request.urlopen(f"{url}/?event={envelope.event_id}", timeout=2) as response:
        response.read()
    _record("downstream", event, envelope, seq=event.seq)


def judge(event: Judged, envelope: Envelope) -> None:
    """Raises what the event says, so that a test sees what the subscription's policy makes of it."""
    if event.raises == "permanent":
        raise Permanent(f"thing {event.thing_id} can never be judged")
    if event.raises.startswith("later"):
        raise RetryLater(0.5, "the judge is busy", counted=event.raises == "later-counted")
    if event.raises:
        raise getattr(builtins, event.raises)(f"judging {event.thing_id} failed")
    _record("judge", event, envelope)


def archive_old(event: Archived, envelope: Envelope) -> None:
    """The handler that was there when the history was written."""
    _record("archive-old", event, envelope, seq=event.seq)


def archive_new(event: Archived, envelope: Envelope) -> None:
    """A handler deployed after the history was written, which wants all of it."""
    _record("archive-new", event, envelope, seq=event.seq)


def tally(event: Archived, envelope: Envelope) -> None:
    """Keeps a read model: its Effect rows, one per event, which ``clear_tally`` empties for a rebuild."""
    _record("tally", event, envelope, seq=event.seq)


def clear_tally() -> None:
    Effect.objects.filter(handler="tally").delete()


SUBSCRIPTIONS = [
    Subscription(Pinged, record_a),
    Subscription(Pinged, record_b),
    Subscription(Pinged, record_c),
    Subscription(Priced, record_price),
    Subscription(Stepped, record_step, ordered=True, max_attempts=1),
    Subscription(Hopped, record_hop, ordered=True, on_dead="skip", max_attempts=1),
    Subscription(Flaked, flaky, max_attempts=5, backoff_base=0.3, backoff_cap=5),
    Subscription(Slept, slow, max_attempts=10, backoff_base=0.1),
    Subscription(Broke, breakable, max_attempts=3, backoff_base=0.1, backoff_cap=0.5),
    Subscription(Jammed, jammable, max_attempts=1),
    Subscription(Crashed, crash, max_attempts=3, backoff_base=0.1, backoff_cap=0.5),
    # A downstream service behind a circuit breaker: 3 failures in a row open it for 1 s.
    Subscription(
        Called,
        call_downstream,
        max_attempts=3,
        backoff_base=0.1,
        backoff_cap=0.4,
        breaker_threshold=3,
        breaker_cooldown=1.0,
    ),
    # LookupErrors are permanent, except KeyError (the more specific), which is transient.
    Subscription(
        Judged,
        judge,
        max_attempts=3,
        backoff_base=0.1,
        backoff_cap=0.5,
        permanent=(LookupError,),
        transient=(KeyError,),
    ),
    Subscription(Archived, archive_old),
    Subscription(Archived, archive_new, history_from="all"),
    Subscription(Archived, tally, rebuild=clear_tally),
]
