from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

PAST_ANY_END = "9" * 18  # a page number no list reaches: what a longer one is taken for


class Pagination(PageNumberPagination):
    """``{count, next, previous, results}``, with ``?page=`` and ``?page_size=`` (1 to 200).

    A malformed ``page`` or ``page_size`` is a 400 naming it (DRF would
    quietly fall back to the default size); a page past the end is a 404,
    however many digits its number has (the schema sets no maximum).
    """

    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any]:
        """The page asked for (DRF's returns None when there is no page size; here there always is)."""
        page: list[Any] | None = super().paginate_queryset(queryset, request, view)
        if page is None:
            raise ImproperlyConfigured("REST_FRAMEWORK['PAGE_SIZE'] is not set: the API pages every list.")
        return page

    def get_page_size(self, request: Request) -> int | None:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        size = whole_number(raw)
        if size is None or not 1 <= size <= self.max_page_size:
            message = f"Give a whole number from 1 to {self.max_page_size}."
            raise ValidationError({self.page_size_query_param: [message]})
        return size

    def get_page_number(self, request: Request, paginator: Any) -> str:
        raw = request.query_params.get(self.page_query_param, "1")
        if raw in self.last_page_strings:
            return raw
        if not (raw.isascii() and raw.isdigit()) or not raw.strip("0"):
            raise ValidationError({self.page_query_param: ["Give a whole number from 1 (or `last`)."]})
        return raw if len(raw) <= 18 else PAST_ANY_END  # int() refuses over 4,300 digits; Django calls it

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = self.max_page_size
        return parameters


def whole_number(raw: str) -> int | None:
    """``raw`` as a number if it is ASCII digits, at most 18 of them (a bigint); else None.

    ``str.isdigit`` also says yes to "²" (which ``int`` refuses) and "٣" (which
    it reads as 3), and ``int`` refuses more than 4,300 digits.
    """
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        return None
    return int(raw)


def paginated_response(
    *, request: Request, view: Any, queryset: Any, serializer_class: type[serializers.Serializer]
) -> Response:
    """One page of ``queryset`` through ``view.pagination_class`` (set it on the view so the schema knows)."""
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)
