"""Every operation of the API, fuzzed from its own schema as a signed-in customer.

Run it alone with ``pytest tests/api/test_schemathesis.py``. For each
operation of ``/api/schema/``, schemathesis sends the schema's examples, its
boundary cases and generated requests (valid and invalid); each answer must
not be a 5xx and must match the schema: a documented status code, the
documented content type and headers, and a body of the documented shape.

Deterministic and bounded: Hypothesis is derandomized, keeps no example
database, and tries a fixed number of examples per operation. So that the
requests reach real orders and real products rather than only 404s and
unknown SKUs, some generated order ids are swapped for the customer's own
orders, and some generated order lines for products that exist.

Not checked: that every schema-valid request is accepted. The schema cannot
say which SKUs exist, which order is whose, or that text may not contain NUL
characters, so a valid-looking request may rightly get a 4xx.
"""

from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import checks

from tests.factories import make_product, place_order
from tests.support.users import make_user

pytestmark = [pytest.mark.django_db, pytest.mark.schemathesis]

MAX_EXAMPLES = 25  # per operation and phase
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]

schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler())


class Shop:
    """What the requests of the running test may refer to: filled in by the ``customer_headers`` fixture."""

    skus: tuple[str, ...] = ()
    order_ids: tuple[str, ...] = ()


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> st.SearchStrategy:
    """Half the time (or so), one of the customer's own orders instead of a random id."""
    if not path_parameters or "order_id" not in path_parameters or not Shop.order_ids:
        return st.just(path_parameters)
    ids = st.sampled_from(Shop.order_ids) | st.just(path_parameters["order_id"])
    return ids.map(lambda order_id: {**path_parameters, "order_id": order_id})


@schema.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy:
    """For a new order, sometimes lines for products that exist, so that an order gets placed."""
    operation = context.operation
    placing = operation is not None and (operation.method.upper(), operation.path) == ("POST", "/api/orders/")
    if not placing or not isinstance(body, dict) or not isinstance(body.get("lines"), list):
        return st.just(body)
    return st.booleans().map(lambda real: _with_real_skus(body) if real else body)


def _with_real_skus(body: dict[str, Any]) -> dict[str, Any]:
    lines = [
        {**line, "sku": Shop.skus[index % len(Shop.skus)]} if isinstance(line, dict) else line
        for index, line in enumerate(body["lines"])
    ]
    return {**body, "lines": lines}


@pytest.fixture
def customer_headers(db, in_process_requests) -> dict[str, str]:
    """A customer with orders in each state, and products to order; another customer's order beside them."""
    customer = make_user("schema-customer")
    products = [make_product(price="2.50"), make_product(price="19.99", on_hand=3)]
    own = [
        place_order(customer=customer, lines=[(products[0], 1)]),
        place_order(customer=customer, lines=[(products[0], 2), (products[1], 1)], confirm=True),
        place_order(customer=customer, lines=[(products[1], 1)]),
    ]
    others = place_order(customer=make_user("schema-other"), lines=[(products[0], 1)])
    Shop.skus = tuple(p.sku for p in products)
    Shop.order_ids = (*(str(order.id) for order in own), str(others.id))
    yield {"Authorization": f"Token {Token.objects.create(user=customer).key}"}
    Shop.skus, Shop.order_ids = (), ()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_a_customer_as_its_schema_says(case, customer_headers):
    # when a generated request is sent as a customer: then no 5xx, and status, headers and body are as documented
    case.call_and_validate(headers=customer_headers, checks=CHECKS)
