"""Serializer fields more than one context's API needs."""

import datetime as dt

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers

AS_OF_FORMAT = "an ISO 8601 date and time with its UTC offset, e.g. 2026-03-01T12:00:00Z or 2026-03-01T13:00:00+01:00"


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date and time that says its offset from UTC: a time without one is refused, not guessed."""

    default_error_messages = {
        "invalid": f"Give {AS_OF_FORMAT}. (In a URL, write + as %2B.)",
        "naive": f"This time has no UTC offset, so it is ambiguous: give {AS_OF_FORMAT}.",
        "out_of_range": "This time is out of range: in UTC it falls before 0001-01-01 or after 9999-12-31.",
    }

    def to_internal_value(self, value: object) -> dt.datetime:
        try:
            # (Python's parser takes a bare date as midnight: here a time of day is required.)
            parsed = parse_datetime(value) if isinstance(value, str) and not _is_date(value) else None
        except ValueError:  # well-formed but impossible, e.g. month 13
            parsed = None
        if parsed is None:
            self.fail("invalid")
        if timezone.is_naive(parsed):
            self.fail("naive")
        try:
            return parsed.astimezone(dt.UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 is a year 0 in UTC, which datetime cannot hold
            self.fail("out_of_range")


def _is_date(value: str) -> bool:
    try:
        return parse_date(value) is not None
    except ValueError:
        return True
