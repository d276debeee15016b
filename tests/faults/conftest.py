"""Fixtures of the chaos suite: the whole system on a broker of its own, once per broker kind."""

import pytest

from tests.support.system import System

BROKER_KINDS = ["redis", "rabbitmq"]


@pytest.fixture(params=BROKER_KINDS)
def system(request, transactional_db, no_live_outbox):
    """The real system on its own Redis, then on its own RabbitMQ node; stopped, every process, after the test.

    It needs the tables to itself, so the session's standard relay and worker
    are stopped first. A process that dies by itself is started again, as a
    process supervisor would, and ``system.crashes()`` lists it: a test that
    kills nothing by hand can assert that list is empty (the chaos suite does).
    """
    with System(broker=request.param, restart_crashed=True, OUTBOX_LEASE_SECONDS="5") as started:
        yield started
