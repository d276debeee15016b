"""The flow diagram is drawn from the registries alone, for any app: here the outbox's own test app."""

from dataclasses import dataclass

import pytest
from django.core.exceptions import ImproperlyConfigured

from outbox import diagram
from outbox.sagas import Saga, SagaRegistry
from tests.outbox.probe import handlers as probe


@dataclass(frozen=True)
class Row:
    source: tuple[str, ...]
    when: str
    target: str
    publishes: str = ""


def test_a_context_holds_the_events_it_publishes_and_each_goes_to_its_subscribed_handlers():
    # given the probe app's Pinged, to which three of the probe's handlers subscribe
    # when
    chart = diagram.flowchart(["probe.Pinged"])
    # then the event is in the box of the app that defines it, with the handlers the app defines
    start = chart.index('subgraph ctx_probe["probe"]')
    box = chart[start : chart.index("\n    end", start)]
    assert 'e_probe_Pinged(["probe.Pinged"])' in box
    # and it points to each handler subscribed to it
    for name in ("probe.record_a", "probe.record_b", "probe.record_c"):
        assert f'h_{name.replace(".", "_")}["{name}"]' in box
        assert f"e_probe_Pinged --> h_{name.replace('.', '_')}" in chart


def test_a_saga_is_drawn_with_its_feeding_handlers_and_its_decisions(monkeypatch):
    # given a saga in the probe app, fed by record_a, whose one decision publishes Priced
    sagas = SagaRegistry()
    rows = [Row(("waiting",), "pinged twice", "priced", publishes="probe.Priced")]
    sagas.add_all([Saga("pricing", fed_by=[probe.record_a], transitions=rows)], app_label="probe")
    monkeypatch.setattr(diagram, "sagas", sagas)
    # when
    chart = diagram.flowchart(["probe.Pinged", "probe.Priced"])
    # then its box, inside the probe's, holds the handler that feeds it, its states and its decision
    start = chart.index('subgraph saga_probe_pricing["pricing"]')
    saga_box = chart[start : chart.index("\n        end", start)]
    assert 'h_probe_record_a["probe.record_a"]' in saga_box
    assert 'h_probe_record_b["probe.record_b"]' not in saga_box
    assert 'saga_probe_pricing_waiting("waiting")' in saga_box
    assert 'saga_probe_pricing_d0{{"pinged twice"}}' in saga_box
    # and the decision leads from one state to the next, and to the event it publishes
    assert "saga_probe_pricing_waiting --> saga_probe_pricing_d0" in chart
    assert "saga_probe_pricing_d0 --> saga_probe_pricing_priced" in chart
    assert "saga_probe_pricing_d0 --> e_probe_Priced" in chart


def test_a_saga_the_diagram_would_draw_wrong_is_refused_at_start_up():
    # a saga fed by a handler that subscribes to nothing
    with pytest.raises(ImproperlyConfigured, match="which subscribes to nothing"):
        SagaRegistry().add_all([Saga("pricing", fed_by=[print], transitions=[])], app_label="probe")
    # a decision that publishes an event no class registers
    rows = [Row(("waiting",), "pinged twice", "priced", publishes="probe.Nope")]
    with pytest.raises(ImproperlyConfigured, match=r"publishes 'probe\.Nope', which no event class registers"):
        SagaRegistry().add_all([Saga("pricing", fed_by=[probe.record_a], transitions=rows)], app_label="probe")
