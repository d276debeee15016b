"""What the shop may tell a customer about paying: the one module of payments other contexts read.

While payments go to the sandbox (``payments.gateway.gateway_is_sandbox``), the shop explains its test
tokens; a real shop never advertises tokens that pay for nothing, so with a real gateway there are none.
"""

from .gateway import gateway_is_sandbox

# The sandbox's behaviour, as payments.sandbox implements it: token, what it does.
SANDBOX_TOKENS = (
    ("tok_visa", "is authorised: the order goes on to ship"),
    ("tok_decline", "is declined (as is any token starting tok_decline): the order is cancelled"),
    ("tok_flaky", "fails twice with a network error, then is authorised on a retry"),
)


def test_tokens() -> tuple[tuple[str, str], ...]:
    """The test tokens a customer may pay with, and what each does; none unless payments go to the sandbox."""
    return SANDBOX_TOKENS if gateway_is_sandbox() else ()
