"""A worker or relay host without a web process serves its own metrics (METRICS_PORT), scraped over HTTP.

Each test's "host" is a metrics folder of its own (PROMETHEUS_MULTIPROC_DIR) and a port: what its endpoint
shows was recorded by the processes given that folder, the worker's pool children included, and by no other.
"""

import uuid
from dataclasses import dataclass

import pytest
from django.db import transaction

from outbox.models import Delivery
from outbox.publishing import publish
from tests.ops.test_metrics import samples
from tests.outbox.probe.events import Pinged
from tests.support.processes import start_relay, start_worker, wait_for
from tests.support.web import free_port, http_get

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]

TOKEN = "host-scrape-token-for-tests"


@dataclass
class Host:
    folder: str
    port: int

    @property
    def env(self) -> dict[str, str]:
        return {"PROMETHEUS_MULTIPROC_DIR": self.folder, "METRICS_PORT": str(self.port)}

    def scrape(self, token: str = TOKEN) -> dict:
        answer = http_get(f"http://127.0.0.1:{self.port}/metrics", headers={"Authorization": f"Bearer {token}"})
        assert answer.status == 200, answer
        return samples(answer.body.decode())


@pytest.fixture
def host(tmp_path) -> Host:
    return Host(folder=str(tmp_path), port=free_port())


@pytest.fixture
def processes():
    started = []
    yield started
    for process in started:
        process.stop()


def handled(event, handler: str = "probe.record_a") -> bool:
    return Delivery.objects.filter(event=event, handler=handler, status="done").exists()


def test_a_worker_serves_what_its_pool_children_recorded(no_live_outbox, host, processes):
    # given a worker alone on its host, serving its metrics with the scraper's token
    worker = start_worker(METRICS_TOKEN=TOKEN, **host.env)
    processes.append(worker)
    assert "metrics: worker serves this host's metrics" in worker.output()
    # when an event is handled by its pool children (publish sends their tasks as it commits)
    with transaction.atomic():
        event = publish(Pinged(thing_id=uuid.uuid4()))
    wait_for(lambda: handled(event), timeout=30, what=worker.output)
    # then its endpoint shows the handler's run, the delivery done and the children's database statements
    found = wait_for(
        lambda: (s := host.scrape()).get(("outbox_deliveries_done_total", (("handler", "probe.record_a"),))) and s,
        timeout=10,
        what="the worker's endpoint to count the delivery",
    )
    assert found[("outbox_deliveries_done_total", (("handler", "probe.record_a"),))] == 1
    assert found[("outbox_handler_duration_seconds_count", (("handler", "probe.record_a"),))] == 1
    assert found[("django_db_query_duration_seconds_count", (("alias", "default"),))] > 0
    # and not the tables' state, which the web's /metrics shows once for every host
    assert not [key for key in found if key[0] == "outbox_deliveries"]


def test_a_worker_asks_for_the_token_when_one_is_set(no_live_outbox, host, processes):
    processes.append(start_worker(METRICS_TOKEN=TOKEN, **host.env))
    refused = http_get(f"http://127.0.0.1:{host.port}/metrics")
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert http_get(f"http://127.0.0.1:{host.port}/metrics", headers={"Authorization": "Bearer wrong"}).status == 401
    assert host.scrape() is not None


def test_a_relay_serves_its_host_and_a_worker_finding_the_port_taken_goes_on_without(
    no_live_outbox, relay_fans_out, host, processes
):
    # given a relay and a worker on one host, both told to serve on its port: the relay, started first, does
    relay = start_relay(METRICS_TOKEN=TOKEN, **host.env)
    processes.append(relay)
    assert "metrics: relay serves this host's metrics" in relay.output()
    worker = start_worker(METRICS_TOKEN=TOKEN, **host.env)
    processes.append(worker)
    assert "metrics: worker cannot serve on 127.0.0.1 port" in worker.output()
    # when an event is left to the relay to fan out, and handled by the worker
    with transaction.atomic():
        event = publish(Pinged(thing_id=uuid.uuid4()))
    wait_for(lambda: handled(event), timeout=30, what=lambda: relay.output() + worker.output())
    # then the one endpoint of the host shows the relay's fan-out and the worker's run alike
    found = wait_for(
        lambda: (s := host.scrape()).get(("outbox_deliveries_done_total", (("handler", "probe.record_a"),))) and s,
        timeout=10,
        what="the relay's endpoint to count the worker's delivery",
    )
    assert found[("outbox_events_published_total", (("type", "probe.Pinged"),))] == 1
    assert found[("outbox_relay_batch_duration_seconds_count", ())] >= 1
    assert found[("outbox_handler_duration_seconds_count", (("handler", "probe.record_a"),))] == 1
