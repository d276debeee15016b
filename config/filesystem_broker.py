"""kombu's file-system transport (the embedded default's broker), with each message written whole before it shows.

kombu's own ``_put`` creates ``<ms>_<uuid>.<queue>.msg`` and then writes it; a
consumer polling the folder may move and read the file in between, find it
empty, and its worker stops on the JSONDecodeError ("Unrecoverable error",
celery/kombu#1551), which ends every process of `make run`. Here the message
is written under a name no consumer takes (``.partial`` after ``.msg``) and
renamed into place, atomically within the folder. config/settings/local.py
points ``filesystem://`` here.
"""

import os
import time
import uuid

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

PARTIAL = ".partial"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: dict, **kwargs) -> None:  # type: ignore[override]  # kombu's name; stubs: message
        """Put a message on ``queue``: written in full, then renamed to the name consumers look for."""
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"  # kombu's name: consumers sort on it
        final = os.path.join(self.data_folder_out, name)
        try:
            with open(final + PARTIAL, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(final + PARTIAL, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
