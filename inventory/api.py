"""The catalogue and stock over REST: products for anyone signed in, stock levels (now or as of a time) for those
with ``inventory.view_stockitem``.

One API class per operation; each parses, calls one inventory selector, and renders.
"""

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.errors import ErrorSerializer, InvalidInputSerializer
from config.api.fields import AS_OF_FORMAT, AwareDateTimeField
from config.api.pagination import Pagination, paginated_response
from config.api.permissions import has_perm
from config.api.schema import error_responses

from . import selectors


class ProductListApi(APIView):
    """The catalogue, by SKU, with the units of each that are available (on hand and not reserved)."""

    pagination_class = Pagination

    class OutputSerializer(serializers.Serializer):
        sku = serializers.CharField()
        name = serializers.CharField()
        price = serializers.DecimalField(max_digits=12, decimal_places=2, help_text="A decimal string, e.g. `6.50`.")
        currency = serializers.CharField(help_text="ISO 4217, e.g. `EUR`.")
        available = serializers.IntegerField(help_text="Units that can be ordered now: on hand and not reserved.")

        class Meta:
            ref_name = "Product"

    @extend_schema(
        operation_id="products_list",
        tags=["products"],
        # (400 for a malformed page or page_size: the shared AutoSchema adds it only to lists with filters.)
        responses={200: OutputSerializer(many=True), **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        return paginated_response(
            request=request, view=self, queryset=selectors.products_available(), serializer_class=self.OutputSerializer
        )


CanViewStock = has_perm(
    "inventory.view_stockitem", message="Reading stock levels needs the inventory.view_stockitem permission."
)


class StockLevelApi(APIView):
    """A SKU's stock now, or as it was at a past time (folded from its stream in the event log)."""

    permission_classes = [CanViewStock]

    class FilterSerializer(serializers.Serializer):
        as_of = AwareDateTimeField(
            required=False,
            help_text=f"The time to answer for: {AS_OF_FORMAT}. Without it (or in the future), now. "
            "A time without a UTC offset is refused (400), never taken as UTC.",
        )

    class OutputSerializer(serializers.Serializer):
        sku = serializers.CharField()
        on_hand = serializers.IntegerField(help_text="Units in the warehouse.")
        reserved = serializers.IntegerField(help_text="Of those, units promised to orders.")
        available = serializers.IntegerField(help_text="`on_hand - reserved`.")
        as_of = serializers.DateTimeField(
            help_text="The time these figures are for, in UTC: the `as_of` asked for, or now when none was "
            "(or when it is in the future, which is not known yet)."
        )

        class Meta:
            ref_name = "StockLevel"

    @extend_schema(
        operation_id="inventory_stock_retrieve",
        tags=["inventory"],
        parameters=[
            OpenApiParameter("sku", str, OpenApiParameter.PATH, description="The product's SKU, e.g. `PEN-BLUE`."),
            FilterSerializer,
        ],
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(
                InvalidInputSerializer,
                description="`as_of` is not an ISO 8601 date and time with a UTC offset, or is out of range.",
                examples=[
                    OpenApiExample(
                        "naive as_of",
                        value={
                            "detail": f"Invalid input: as_of: {AwareDateTimeField.default_error_messages['naive']}",
                            "code": "invalid",
                            "errors": {"as_of": [AwareDateTimeField.default_error_messages["naive"]]},
                        },
                        status_codes=[400],
                        response_only=True,
                    )
                ],
            ),
            404: OpenApiResponse(
                ErrorSerializer,
                description="No product has this SKU.",
                examples=[
                    OpenApiExample(
                        "unknown SKU",
                        value={"detail": "No product has SKU 'NO-SUCH-SKU'.", "code": "not_found"},
                        status_codes=[404],
                        response_only=True,
                    )
                ],
            ),
        },
    )
    def get(self, request: Request, sku: str) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        # No SKU holds a NUL (PostgreSQL text cannot), and asking the database for one is an error, not a miss.
        level = selectors.stock_as_of(sku=sku, at=filters.validated_data.get("as_of")) if "\x00" not in sku else None
        if level is None:
            raise NotFound(f"No product has SKU {sku!r}.")
        return Response(self.OutputSerializer(level).data)
