"""Random bodies, headers and query strings to every API operation: never a 5xx; a refusal writes nothing.

The operations come from Django's URL resolver (every method of every view
routed under ``/api/``), so a route added later is fuzzed without a change
here; the query parameters each one documents in ``/api/schema/`` are tried
besides random ones. Each is called as an anonymous client, a customer and a
staff user holding every permission. A request is random in what a client
controls: the body (random JSON, JSON nested thousands deep, random bytes, or
a valid body with one thing broken), the content type and its charset, the
Accept, Authorization, Idempotency-Key and Cookie headers, the query string
(percent-encoded bytes that need not be UTF-8) and the path parameters (some
naming real orders, SKUs and dead letters).

Each answer must be below 500; a 4xx must leave every table exactly as it
was (the content of every row, not only the count, through one md5 per table).

Deterministic and bounded: Hypothesis is derandomized, keeps no example
database and tries ``MAX_EXAMPLES`` requests per operation and caller.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Permission
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.views import APIView

from tests.factories import ADDRESS, make_product, place_order
from tests.support import deliveries, wsgi
from tests.support.database import every_table
from tests.support.users import PASSWORD, make_user

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.schemathesis,
    # A random X-Forwarded-For makes a throttle cache key memcached could not take (the cache here is Redis);
    # a charset of unicode_escape makes Python warn about the escapes it decodes in a query string.
    pytest.mark.filterwarnings("ignore::django.core.cache.backends.base.CacheKeyWarning"),
    pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning"),
]

MAX_EXAMPLES = 40  # per operation and caller
CALLERS = ["anonymous", "customer", "staff"]
METHODS = ["get", "post", "put", "patch", "delete"]  # not HEAD (GET's twin) nor OPTIONS (DRF's, the same for all)


@dataclass(frozen=True)
class Operation:
    method: str
    route: str  # as Django routes it: "api/orders/<uuid:order_id>/"

    @property
    def parameters(self) -> list[tuple[str, str, str]]:
        """(placeholder, converter, name) of each path parameter: ("<uuid:order_id>", "uuid", "order_id")."""
        return [(m[0], m[1] or "str", m[2]) for m in re.finditer(r"<(?:(\w+):)?(\w+)>", self.route)]

    @property
    def schema_path(self) -> str:
        path = "/" + self.route
        for placeholder, _, name in self.parameters:
            path = path.replace(placeholder, f"{{{name}}}")
        return path

    def __str__(self) -> str:
        return f"{self.method.upper()} /{self.route}"


def api_operations() -> list[Operation]:
    """Every method of every DRF view that Django routes under ``api/``."""
    operations = []
    for route, pattern in _routes(get_resolver().url_patterns):
        view = getattr(pattern.callback, "view_class", None)
        if route.startswith("api/") and view is not None and issubclass(view, APIView):
            operations += [Operation(m, route) for m in METHODS if hasattr(view, m)]
    return operations


def _routes(patterns: list, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


OPERATIONS = api_operations()
SCHEMA = SchemaGenerator().get_schema(request=None, public=True)


def documented_query_parameters(operation: Operation) -> dict[str, dict[str, Any]]:
    """Name -> JSON Schema of each query parameter the operation documents in ``/api/schema/``."""
    documented = SCHEMA["paths"].get(operation.schema_path, {}).get(operation.method, {})
    return {p["name"]: p.get("schema", {}) for p in documented.get("parameters", []) if p["in"] == "query"}


# DRF's ?format= on every route; paging on every route (a view may page without saying so).
UNDOCUMENTED = {
    "format": {"enum": ["json", "api", "openapi", "yaml", "html"]},
    "page": {"type": "integer"},
    "page_size": {"type": "integer"},
}


# What a request is made of --------------------------------------------------------------------------------------

latin1_text = st.text(st.characters(max_codepoint=255), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
NUMBERS = ["0", "-1", "1", "2", "²", "٣", "1e3", "9" * 30, "9" * 5000, "1.5", " 2", "NaN", ""]
TIMES = [
    "2026-03-01T12:00:00Z",
    "2026-03-01T13:00:00+01:00",
    "2026-03-01T12:00:00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59-23:59",
    "2026-02-30T00:00:00Z",
    "2026-03-01T12:00:00+24:00",
    "2026-03-01",
    "now",
]
TEXTS = ["", "\x00", "x" * 1000, "é", "a%b"]
raw_bytes = st.binary(max_size=60).map(lambda b: quote(b, safe=""))
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=utf-16",
        "application/json; charset=latin-1",
        "application/json; charset=base64",
        "application/json; charset=bz2_codec",
        "application/json; charset=unicode_escape",
        "application/json; charset",
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=rot13",
        "multipart/form-data",
        "multipart/form-data; boundary=xyz",
        "text/plain",
        ";;",
    ]
) | latin1_text.map(lambda t: t.replace("\n", "").replace("\r", ""))
accepts = st.sampled_from(
    ["application/json", "*/*", "text/html", "application/xml", "application/vnd.oai.openapi", "application/yaml"]
) | latin1_text.map(lambda t: t.replace("\n", "").replace("\r", ""))


@st.composite
def headers(draw: st.DrawFn, token: str | None) -> dict[str, str]:
    """The caller's own credentials (nine times in ten, or none, or garbage), and random other headers."""
    chosen: dict[str, str] = {}
    credentials = draw(st.sampled_from(["own"] * 9 + ["none", "garbage"]))
    if credentials == "own" and token is not None:
        chosen["HTTP_AUTHORIZATION"] = f"Token {token}"
    elif credentials == "garbage":
        chosen["HTTP_AUTHORIZATION"] = draw(st.sampled_from(["Token ", "Token a b", "Bearer x"]) | latin1_text)
    optional = {
        "HTTP_ACCEPT": accepts,
        "HTTP_IDEMPOTENCY_KEY": st.sampled_from(["key-1", "key-2"]) | latin1_text,
        "HTTP_COOKIE": st.sampled_from(['sessionid="abcdefgh\\000ij"', "sessionid=" + "a" * 32, "csrftoken=x"])
        | latin1_text.map(lambda t: f"sessionid={t}"),
        "HTTP_ACCEPT_LANGUAGE": latin1_text,
        "HTTP_X_FORWARDED_FOR": latin1_text,
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=3)):
        chosen[name] = draw(optional[name])
    return {name: value.replace("\n", "").replace("\r", "") for name, value in chosen.items()}


def near_values(schema: dict[str, Any]) -> list[str]:
    """Values at and past the edges of what a parameter of this JSON Schema takes."""
    if schema.get("type") == "integer":
        return NUMBERS
    if schema.get("format") == "date-time":
        return TIMES
    return [*map(str, schema.get("enum", [])), *TEXTS]


def query_pairs(operation: Operation) -> list[tuple[str, str]]:
    """Each query parameter the operation takes (documented, or DRF's) with each value near its edges."""
    parameters = {**UNDOCUMENTED, **documented_query_parameters(operation)}
    return [(name, value) for name, schema in sorted(parameters.items()) for value in near_values(schema)]


@st.composite
def query_strings(draw: st.DrawFn, operation: Operation) -> str:
    """Parameters the operation takes with values near their edges, and sometimes random pairs."""
    pairs = draw(st.lists(st.sampled_from(query_pairs(operation)), max_size=3))
    anything = st.text(max_size=30) | st.binary(max_size=30)
    pairs += draw(st.lists(st.tuples(anything, anything), max_size=2))
    return "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)


def valid_bodies(operation: Operation, shop: "Shop") -> list[dict[str, Any]]:
    """Bodies that would be accepted, for the operations that take one, to break one thing of."""
    order = {"lines": [{"sku": sku, "quantity": 1} for sku in shop.skus], "shipping_address": ADDRESS}
    known = {
        ("post", "api/auth/token/"): {"username": "fuzz-customer", "password": PASSWORD},
        ("post", "api/orders/"): {**order, "payment_token": "tok_visa"},
        ("post", "api/orders/<uuid:order_id>/cancel/"): {"reason": "Changed my mind."},
    }
    return [known[operation.method, operation.route]] if (operation.method, operation.route) in known else []


@st.composite
def broken(draw: st.DrawFn, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with one field removed, replaced by random JSON, or one field added."""
    key = draw(st.sampled_from(sorted(body)))
    how = draw(st.sampled_from(["drop", "replace", "add"]))
    if how == "drop":
        return {k: v for k, v in body.items() if k != key}
    if how == "replace":
        return {**body, key: draw(json_values)}
    return {**body, draw(st.text(max_size=10)): draw(json_values)}


@st.composite
def bodies(draw: st.DrawFn, operation: Operation, shop: "Shop") -> bytes:
    valid = valid_bodies(operation, shop)
    as_json = st.sampled_from(valid) | st.sampled_from(valid).flatmap(broken) if valid else json_values
    kinds = {
        "none": st.just(b""),
        "json": (as_json | json_values).map(lambda v: json.dumps(v).encode()),
        "nested": st.integers(1, 5000).map(lambda n: ("[" * n + "]" * n).encode()),
        "bytes": st.binary(max_size=200),
    }
    return draw(kinds[draw(st.sampled_from(sorted(kinds)))])


@st.composite
def paths(draw: st.DrawFn, operation: Operation, shop: "Shop") -> str:
    path = "/" + operation.route
    for placeholder, converter, name in operation.parameters:
        real = st.sampled_from(shop.known[name]) if name in shop.known else st.nothing()
        value = draw(st.one_of(real, real, real, _random_parameter(converter)))
        path = path.replace(placeholder, value)
    return path


def _random_parameter(converter: str) -> st.SearchStrategy[str]:
    if converter == "uuid":
        return st.uuids().map(str)
    if converter == "int":
        return st.integers(min_value=0, max_value=10**30).map(str)
    return st.text(min_size=1, max_size=30).map(lambda t: quote(t, safe="")) | raw_bytes.filter(bool)


# Who calls, and what there is ---------------------------------------------------------------------------------


@dataclass
class Shop:
    tokens: dict[str, str | None]
    skus: tuple[str, ...]
    known: dict[str, tuple[str, ...]]  # real values of path parameters, by name


@pytest.fixture
def shop(db, in_process_requests, settings) -> Shop:
    """A customer with orders in two states, another's order, products, a dead letter; staff with every permission."""
    settings.DEBUG_PROPAGATE_EXCEPTIONS = True  # a bug fails the test with its traceback, not as a bare 500
    customer = make_user("fuzz-customer")
    staff = make_user("fuzz-staff", staff=True)
    staff.user_permissions.set(Permission.objects.all())
    products = [make_product(price="2.50"), make_product(price="19.99", on_hand=3)]
    orders = [
        place_order(customer=customer, lines=[(products[0], 1)]),
        place_order(customer=customer, lines=[(products[1], 1)], confirm=True),
        place_order(customer=make_user("fuzz-other"), lines=[(products[0], 1)]),
    ]
    dead = deliveries.make_delivery(status="dead")
    return Shop(
        tokens={"anonymous": None, **{u.username.removeprefix("fuzz-"): _token(u) for u in (customer, staff)}},
        skus=tuple(p.sku for p in products),
        known={
            "order_id": tuple(str(o.id) for o in orders),
            "sku": tuple(p.sku for p in products),
            "delivery_id": (str(dead.id),),
        },
    )


def _token(user) -> str:
    return Token.objects.create(user=user).key


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_random_requests_never_get_a_5xx_and_a_refused_one_writes_nothing(shop, operation, caller, data):
    # given a random request to the operation, with the caller's credentials most of the time
    path = data.draw(paths(operation, shop), label="path")
    query = data.draw(query_strings(operation), label="query")
    body = data.draw(bodies(operation, shop), label="body")
    content_type = data.draw(content_types, label="content type")
    extra = data.draw(headers(shop.tokens[caller]), label="headers")
    before = every_table()
    # when
    response = wsgi.call(operation.method.upper(), path, query=query, body=body, content_type=content_type, **extra)
    # then
    assert response.status_code < 500, response.content[:1000]
    if 400 <= response.status_code < 500:
        assert every_table() == before, f"a {response.status_code} wrote: {response.content[:500]!r}"
