"""Stand-ins for a real provider's adapters, named in settings by tests (never called).

They do not say ``sandbox = True``: production takes them without ``ALLOW_SANDBOX_PROVIDERS``.
"""


class LiveGateway:
    pass


class LiveCarrier:
    pass
