"""What `ledger serve` allows a connection before it is closed, so that clients that connect and say
nothing, or trickle a request a byte at a time, cannot crowd out those that ask and go.

uvicorn's own HTTP/1.1 protocol (h11) closes a connection idle after a response (keep-alive), but
not one that never finishes a request: any byte received restarts nothing there. The protocol here
gives every request a deadline from the moment its connection became idle, and keeps the number of
open connections under a cap (below the process's file limit, so that accept() never fails), by
closing the longest-idle connection when a new one would pass it.
"""

from __future__ import annotations

import asyncio
import resource
import socket
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from ..domain.errors import Code, LedgerError


def _default_max_connections() -> int:
    """Room for the database's connections, the log and the listening socket below the file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1000
    return max(16, min(1000, soft - 64))


@dataclass(frozen=True)
class ServerLimits:
    max_connections: int = 0  # 0: 1,000, or fewer where the file limit is lower
    request_timeout: float = 10.0  # seconds to send a whole request (headers and body)
    keep_alive: float = 5.0  # seconds a connection may stay idle after a response
    max_header_bytes: int = 16 * 1024  # request line and headers

    def connections(self) -> int:
        return self.max_connections or _default_max_connections()

    def uvicorn_options(self) -> dict[str, Any]:
        return {
            "http": guarded_protocol(self),
            "timeout_keep_alive": self.keep_alive,
            "h11_max_incomplete_event_size": self.max_header_bytes,
        }


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound and listening at host:port; UNAVAILABLE naming the address when it cannot be."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
    except OSError as e:
        raise LedgerError(Code.UNAVAILABLE, f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def guarded_protocol(limits: ServerLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a request deadline and a cap on connections."""
    cap = limits.connections()

    class GuardedProtocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        idle_since = 0.0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()
            if len(self.connections) > cap:
                self._shed()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.more_body and not self.cycle.response_complete:
                self._disarm()  # the whole request is in: the application has it now

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request on this connection gets its own deadline

        def waiting_for_request(self) -> bool:
            """No request of this connection's is with the application."""
            return self.cycle is None or self.cycle.response_complete or self.cycle.more_body

        def _arm(self) -> None:
            self._disarm()
            self.idle_since = self.loop.time()
            self._deadline = self.loop.call_later(limits.request_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self.waiting_for_request() and not self.transport.is_closing():
                self.transport.close()

        def _shed(self) -> None:
            """Over the cap: close the connection that has waited longest without a request."""
            idle = [c for c in self.connections if isinstance(c, GuardedProtocol) and c.waiting_for_request()]
            oldest = min(idle, key=lambda c: c.idle_since, default=None)
            (oldest or self).transport.close()

    return GuardedProtocol
