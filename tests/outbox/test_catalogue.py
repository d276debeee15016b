from io import StringIO
from pathlib import Path

from django.core.management import call_command

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_the_event_catalogue_in_docs_is_current():
    out = StringIO()
    call_command("outbox_catalogue", exclude_prefix=["probe."], stdout=out)
    assert DOC.read_text() == out.getvalue(), "regenerate it: python manage.py outbox_catalogue > docs/events.md"
