"""A sandbox gateway whose worker dies right after the provider first charges a key (the settings below use it).

The charge is committed at the provider; the handler's transaction, which
would have recorded it, dies with the process.
"""

import os

from payments import sandbox
from payments.sandbox import SandboxGateway


class DiesAfterTheFirstCharge(SandboxGateway):
    def authorise(self, *, token, amount, idempotency_key):
        answer = super().authorise(token=token, amount=amount, idempotency_key=idempotency_key)
        if answer.approved and sandbox.calls(idempotency_key=idempotency_key) == 1:
            os._exit(1)  # as a SIGKILL or an OOM kill would, before our commit
        return answer
