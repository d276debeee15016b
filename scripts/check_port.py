"""Stop `make run` before it starts anything when its web port is taken: ``check_port.py PORT``.

Binds the port on 127.0.0.1 as runserver will (SO_REUSEADDR, so a port left in
TIME_WAIT by the last run counts as free) and lets it go. Standard library only:
it runs before the venv exists.
"""

import errno
import socket
import sys


def main(argv: list[str]) -> int:
    try:
        port = int(argv[1])
        if not 0 < port < 65536:
            raise ValueError(port)
    except (IndexError, ValueError):
        print(f"make run: PORT={argv[1] if len(argv) > 1 else ''!r} is not a port number (1-65535)", file=sys.stderr)
        return 2
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            print(
                f"make run: port {port} is in use (another `make run`, or another server); "
                f"run `make run PORT={port + 1 if port < 65535 else 8001}`",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
