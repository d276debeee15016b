"""Reading what the relay put on the Redis broker, to count messages exactly."""

import base64
import json

import redis as redis_lib


def queued_task_args(client: redis_lib.Redis, queue: str) -> list[list]:
    """The arguments (delivery ids, dispatch token) of the ``outbox.run_deliveries`` tasks waiting in ``queue``."""
    found = []
    for raw in client.lrange(queue, 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == "outbox.run_deliveries":
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            found.append(args)
    return found


def queued_delivery_batches(client: redis_lib.Redis, queue: str) -> list[list[int]]:
    """The delivery-id lists of the ``outbox.run_deliveries`` tasks waiting in ``queue``."""
    return [args[0] for args in queued_task_args(client, queue)]


def in_flight_delivery_ids(client: redis_lib.Redis, queue: str) -> set[int]:
    """Delivery ids still waiting in ``queue`` or taken by a worker and not yet acknowledged."""
    waiting = {i for batch in queued_delivery_batches(client, queue) for i in batch}
    taken = set()
    for raw in client.hvals("unacked"):
        message = json.loads(raw)[0]
        if message["headers"]["task"] == "outbox.run_deliveries":
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            taken.update(args[0])
    return waiting | taken
