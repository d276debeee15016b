"""Reading the event log: one workflow's events (``outbox.selectors.correlation_events``)."""

import uuid

import pytest
from django.db import transaction

from outbox.publishing import publish
from outbox.selectors import correlation_events
from tests.outbox.probe.events import Pinged, Stepped

pytestmark = pytest.mark.django_db


def test_a_workflows_events_are_read_in_the_order_they_were_written_of_the_types_asked_for():
    # given two workflows whose events are interleaved in the log
    ours, theirs, thing = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with transaction.atomic():
        written = [
            publish(Stepped(thing_id=thing, seq=1), correlation_id=ours),
            publish(Pinged(thing_id=thing, seq=2), correlation_id=theirs),
            publish(Pinged(thing_id=thing, seq=3), correlation_id=ours),
            publish(Stepped(thing_id=thing, seq=4), correlation_id=ours),
        ]
    # when
    every = list(correlation_events(correlation_id=ours))
    stepped = list(correlation_events(correlation_id=ours, types={"probe.Stepped"}))
    # then
    assert [row.id for row in every] == [written[0].id, written[2].id, written[3].id]
    assert [row.payload["seq"] for row in stepped] == [1, 4]
    assert list(correlation_events(correlation_id=uuid.uuid4())) == []
