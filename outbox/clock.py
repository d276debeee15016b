"""Times on the database's clock, so that every relay, runner and host compares them alike."""

from datetime import timedelta

from django.db.models import DateTimeField, ExpressionWrapper, Value
from django.db.models.functions import Now


def db_now_plus(seconds: float) -> ExpressionWrapper:
    """``now() + seconds``, evaluated by the database."""
    return ExpressionWrapper(Now() + Value(timedelta(seconds=seconds)), output_field=DateTimeField())
