"""Client addresses for tests that count by address (throttles, the sign-in lockout)."""

import ipaddress
import secrets

_DOCUMENTATION = ipaddress.ip_network("2001:db8::/32")  # RFC 3849, never routed


def fresh_address() -> str:
    """An address no other test, in this run or an earlier one on the same cache, has used.

    Counts live in the shared cache across tests and runs, so an address drawn from a
    few hundred (a TEST-NET) meets an earlier test's failures now and then: 96 random
    bits do not.
    """
    return str(_DOCUMENTATION[secrets.randbits(96)])
