"""The flow of events, drawn from the registries as a Mermaid flowchart (GitHub renders it).

A context is the installed app an event class or a handler is defined in. It
is a box holding the events it publishes and its handlers; a saga is a box
inside its context's, holding the handlers that feed it, its states and its
decisions. Arrows: an event to each handler subscribed to it, a saga's
decision from one state to the next and to the event it publishes. Nothing
here is written by hand, so the drawing cannot drift from the code.
"""

import re
from collections import defaultdict
from collections.abc import Iterable

from django.apps import apps

from .events import registry
from .sagas import Saga, sagas
from .subscriptions import Subscription, subscriptions


def flowchart(event_types: Iterable[str]) -> str:
    """The Mermaid source for these event types; those no handler subscribes to are left out."""
    drawn = [name for name in event_types if subscriptions.for_type(name)]
    subs = sorted((s for name in drawn for s in subscriptions.for_type(name)), key=lambda s: s.name)
    feeding = {handler: saga for saga in sagas.all() for handler in saga.fed_by}
    boxes: dict[str, list[str]] = defaultdict(list)  # a context's box or a saga's (by _saga_id): its nodes
    for name in drawn:
        boxes[_id("ctx", _context_of_event(name))].append(f"{_id('e', name)}([{_label(name)}])")
    edges = []
    for sub in subs:
        saga = feeding.get(sub.handler)
        box = _saga_id(saga) if saga else _id("ctx", _context_of_handler(sub))
        boxes[box].append(f"{_id('h', sub.name)}[{_label(sub.name)}]")
        edges.append(f"{_id('e', sub.event_type)} --> {_id('h', sub.name)}")
    drawn_sagas = [saga for saga in sagas.all() if _saga_id(saga) in boxes]
    for saga in drawn_sagas:
        nodes, saga_edges = _decisions(saga, drawn)
        boxes[_saga_id(saga)] += nodes
        edges += saga_edges
    return "\n".join(_render(drawn, boxes, drawn_sagas) + [f"    {edge}" for edge in edges])


def _decisions(saga: Saga, drawn: list[str]) -> tuple[list[str], list[str]]:
    """A saga's states and decisions (nodes), and state -> decision -> state, decision -> event (edges)."""
    prefix = _saga_id(saga)
    states = dict.fromkeys(str(state) for row in saga.transitions for state in (*row.source, row.target))
    nodes = [f"{prefix}_{_id(state)}({_label(state)})" for state in states]
    edges = []
    for index, row in enumerate(saga.transitions):
        decision = f"{prefix}_d{index}"
        nodes.append(f"{decision}{{{{{_label(row.when)}}}}}")
        edges += [f"{prefix}_{_id(str(state))} --> {decision}" for state in row.source]
        edges.append(f"{decision} --> {prefix}_{_id(str(row.target))}")
        if row.publishes in drawn:
            edges.append(f"{decision} --> {_id('e', row.publishes)}")
    return nodes, edges


def _render(drawn: list[str], boxes: dict[str, list[str]], drawn_sagas: list[Saga]) -> list[str]:
    """The boxes and their nodes; edges come after, as a node belongs to the box it is first named in."""
    lines = ["flowchart LR"]
    contexts = {_context_of_event(name) for name in drawn} | {saga.app_label for saga in drawn_sagas}
    contexts |= {box.removeprefix("ctx_") for box in boxes if box.startswith("ctx_")}
    for context in sorted(contexts):
        lines.append(f"    subgraph {_id('ctx', context)}[{_label(context)}]")
        lines += [f"        {node}" for node in boxes.get(_id("ctx", context), [])]
        for saga in (s for s in drawn_sagas if s.app_label == context):
            lines.append(f"        subgraph {_saga_id(saga)}[{_label(saga.name)}]")
            lines += [f"            {node}" for node in boxes[_saga_id(saga)]]
            lines.append("        end")
        lines.append("    end")
    return lines


def _saga_id(saga: Saga) -> str:
    return _id("saga", saga.app_label, saga.name)


def _context_of_event(event_type: str) -> str:
    config = apps.get_containing_app_config(registry.get(event_type).__module__)
    return config.label if config else event_type.split(".", 1)[0]


def _context_of_handler(sub: Subscription) -> str:
    config = apps.get_containing_app_config(sub.handler.__module__)
    return config.label if config else sub.queue


def _id(*parts: str) -> str:
    """A Mermaid node id: letters, digits and underscores only."""
    return "_".join(re.sub(r"\W", "_", part) for part in parts)


def _label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'
