"""Listening: the address bound once, and uvicorn run on it until a signal stops it gracefully."""

from __future__ import annotations

import signal
import socket
import sys
from types import FrameType

from fastapi import FastAPI

from seqcli.errors import SeqcliError


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one); a taken address is a SeqcliError."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, protocol)
    except (OSError, UnicodeError) as error:
        raise SeqcliError(f"--host {host}: {getattr(error, 'strerror', None) or error}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # connections made while the model loads wait here
    except OSError as error:
        sock.close()
        raise SeqcliError(f"--host {host} --port {port}: {error.strerror or error}") from None
    return sock


def url(sock: socket.socket) -> str:
    """http://host:port of a bound socket (brackets around an IPv6 host)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(app: FastAPI, sock: socket.socket, access_log: bool, ready: str) -> None:
    """Print the line ready, then serve app on sock until SIGINT or SIGTERM; stop gracefully and return.

    On the signal uvicorn stops accepting connections, lets the requests in flight finish,
    and runs the app's shutdown; a second Ctrl-C stops at once. Around uvicorn's own
    handlers (while it starts, and after it has stopped) a signal only asks the server to
    stop: one that arrives while uvicorn starts still stops it, and the signal uvicorn
    raises again once it has shut down does nothing, so a graceful stop returns (and the
    command exits 0) instead of dying by the signal. ready is printed once these handlers
    are in place, so whoever waits for it may signal the server from then on.
    """
    import uvicorn

    config = uvicorn.Config(app, log_level="info", access_log=access_log, timeout_graceful_shutdown=None)
    server = uvicorn.Server(config)

    def stop(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(ready, file=sys.stderr, flush=True)
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
