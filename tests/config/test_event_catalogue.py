from io import StringIO
from pathlib import Path

from django.core.management import call_command

from outbox import schemas
from outbox.diagram import flowchart
from outbox.events import registry

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "events.md"
README = ROOT / "README.md"


def project_events(name: str) -> bool:
    return not name.startswith("probe.")  # the outbox's own test app


def test_the_event_catalogue_in_docs_is_current():
    out = StringIO()
    call_command("outbox_catalogue", exclude_prefix=["probe."], stdout=out)
    assert DOC.read_text() == out.getvalue(), "regenerate it: python manage.py outbox_catalogue > docs/events.md"


def test_the_readme_shows_the_flow_as_the_code_draws_it():
    # given the flow drawn from the registries, as at the top of docs/events.md
    flow = flowchart([name for name in registry.names() if project_events(name)])
    # when / then
    assert f"```mermaid\n{flow}\n```" in README.read_text(), (
        "copy the diagram at the top of docs/events.md into README.md (How it fits together)"
    )


def test_every_event_version_matches_its_snapshot_and_every_stored_payload_decodes():
    # given each app's event_schemas/: every version's JSON Schema, with payloads as it stored them
    # when
    problems = schemas.check(registry, include=project_events)
    # then
    assert problems == [], "\n".join(problems)


def test_the_command_checks_the_snapshots_too():
    out = StringIO()
    call_command("outbox_catalogue", "--check-schemas", exclude_prefix=["probe."], stdout=out)
    assert "Every event class matches its version's snapshot" in out.getvalue()
