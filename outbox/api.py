"""The dead-letter queue over REST: staff see it, and retry needs ``outbox.retry_delivery``.

One API class per operation; each parses, calls one outbox selector or
service, and renders.
"""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.errors import Conflict
from config.api.pagination import Pagination, paginated_response
from config.api.permissions import IsStaff, has_perm
from config.api.schema import error_responses

from . import selectors, services
from .models import Delivery
from .serializers import EventEnvelopeSerializer

CanRetryDeliveries = has_perm(
    "outbox.retry_delivery",
    "Retrying dead deliveries needs the outbox.retry_delivery permission, not only staff status.",
)
MAX_ID = 2**63 - 1  # the largest bigint: an id past it names no row


class DeadLetterListApi(APIView):
    """Dead deliveries not yet retried or discarded, oldest first."""

    permission_classes = [IsStaff]
    pagination_class = Pagination

    class FilterSerializer(serializers.Serializer):
        handler = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=200,
            help_text="Only this handler's, e.g. `payments.authorise_payment` (blank: every handler's).",
        )

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        handler = serializers.CharField()
        queue = serializers.CharField()
        attempts = serializers.IntegerField()
        last_error = serializers.CharField()
        traceback = serializers.CharField()
        event = EventEnvelopeSerializer()
        finished_at = serializers.DateTimeField(allow_null=True, help_text="When it died.")

        class Meta:
            ref_name = "DeadLetter"

    @extend_schema(
        operation_id="outbox_dead_letters_list", parameters=[FilterSerializer], responses=OutputSerializer(many=True)
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = selectors.dead_letters(handler=filters.validated_data.get("handler"))
        return paginated_response(request=request, view=self, queryset=queryset, serializer_class=self.OutputSerializer)


class DeadLetterRetryApi(APIView):
    """Send a dead delivery round again with a fresh set of attempts (after its cause is mended)."""

    permission_classes = [IsStaff, CanRetryDeliveries]

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        handler = serializers.CharField()
        status = serializers.ChoiceField(choices=Delivery.Status.choices, help_text="`pending`: it is queued again.")
        detail = serializers.CharField()

        class Meta:
            ref_name = "DeadLetterRetried"

    @extend_schema(
        operation_id="outbox_dead_letters_retry",
        request=None,
        parameters=[OpenApiParameter("delivery_id", int, OpenApiParameter.PATH, description="The delivery's id.")],
        responses={
            202: OpenApiResponse(OutputSerializer, description="Queued for another attempt."),
            **error_responses(404, 409),
        },
    )
    def post(self, request: Request, delivery_id: int) -> Response:
        delivery = _delivery(delivery_id)
        if not services.dead_letter_retry(deliveries=Delivery.objects.filter(id=delivery.id)):
            raise Conflict(_why_not_retryable(_delivery(delivery_id)))
        delivery.refresh_from_db()
        detail = f"Delivery {delivery.id} to {delivery.handler} is queued for another attempt."
        body = {"id": delivery.id, "handler": delivery.handler, "status": delivery.status, "detail": detail}
        return Response(self.OutputSerializer(body).data, status=status.HTTP_202_ACCEPTED)


def _delivery(delivery_id: int) -> Delivery:
    delivery = Delivery.objects.filter(id=delivery_id).first() if delivery_id <= MAX_ID else None
    if delivery is None:
        raise NotFound(f"There is no delivery {delivery_id}.")
    return delivery


def _why_not_retryable(delivery: Delivery) -> str:
    if delivery.status != Delivery.Status.DEAD:
        return f"Delivery {delivery.id} is {delivery.status}, not dead: only dead deliveries can be retried."
    return (
        f"Delivery {delivery.id} was discarded at {delivery.resolved_at:%Y-%m-%d %H:%M:%S} UTC "
        "and is kept only as a record; it cannot be retried."
    )
