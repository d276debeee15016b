"""The embedded default's broker shows a message to consumers only once it is written whole (celery/kombu#1551)."""

import os
from queue import Empty

import pytest
from kombu import Connection

from config import filesystem_broker


@pytest.fixture
def channel(tmp_path):
    folder = tmp_path / "broker"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "control_folder": str(tmp_path / "ctl")}
    with Connection(transport=filesystem_broker.Transport, transport_options=options) as connection:
        chan = connection.channel()
        chan.folder = folder
        yield chan


def test_no_consumer_sees_a_message_before_its_last_byte_is_written(channel, monkeypatch):
    # given a producer stopped just before its message gets the name consumers look for
    seen_before_rename = []
    replace = os.replace

    def rename(source, target):
        seen_before_rename.append((sorted(p.name for p in channel.folder.iterdir()), _take(channel, "orders")))
        replace(source, target)

    monkeypatch.setattr(filesystem_broker.os, "replace", rename)
    # when it puts a message on the orders queue
    channel._put("orders", {"body": "x" * 100_000, "headers": {}})
    # then, until the rename, the folder held only the partial file, and a consumer found nothing to take
    [(names, taken)] = seen_before_rename
    assert len(names) == 1, names
    assert names[0].endswith(".orders.msg" + filesystem_broker.PARTIAL), names
    assert taken is None
    # and after it, the consumer gets the message whole, and the folder is empty
    assert channel._get("orders") == {"body": "x" * 100_000, "headers": {}}
    assert list(channel.folder.iterdir()) == []


def test_each_message_reaches_its_own_queue_once(channel):
    # (in the order of their milliseconds, as kombu's: two of one millisecond in either order)
    for n in range(3):
        channel._put("orders.replay", {"n": n})
    channel._put("orders", {"n": "other queue"})
    assert sorted(channel._get("orders.replay")["n"] for _ in range(3)) == [0, 1, 2]
    assert _take(channel, "orders.replay") is None
    assert channel._get("orders") == {"n": "other queue"}


def _take(channel, queue):
    try:
        return channel._get(queue)
    except Empty:
        return None
