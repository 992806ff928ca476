"""What `ledger serve` allows a connection before it is closed, so that clients that connect and say
nothing, or trickle a request a byte at a time, cannot crowd out those that ask and go.

uvicorn's own HTTP/1.1 protocol (h11) closes a connection idle after a response (keep-alive), but
not one that never finishes a request: any byte received restarts nothing there. The protocol here
gives every request a deadline from the moment its connection became idle. The listening socket
keeps the number of open connections under a cap, below the process's file limit: past it, each
new connection closes the one idle longest, or is closed itself when every one is busy. asyncio must
never meet the file limit: it goes on calling accept() after one failed for want of descriptors,
logging each failure with its traceback (megabytes a second).
"""

from __future__ import annotations

import asyncio
import resource
import socket
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from ..domain.errors import Code, LedgerError

ACCEPT_BURST = 64  # the listen backlog, which asyncio also takes as how many accept() calls a wake-up makes


def _default_max_connections() -> int:
    """Room below the file limit for the database's connections, the log and the tokens file."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1000
    return max(16, min(1000, soft - 2 * ACCEPT_BURST))


@dataclass(frozen=True)
class ServerLimits:
    max_connections: int = 0  # 0: 1,000, or fewer where the file limit is lower
    request_timeout: float = 10.0  # seconds to send a whole request (headers and body)
    keep_alive: float = 5.0  # seconds a connection may stay idle after a response
    max_header_bytes: int = 16 * 1024  # request line and headers

    def connections(self) -> int:
        return self.max_connections or _default_max_connections()

    def serving(self, host: str, port: int) -> tuple[socket.socket, dict[str, Any]]:
        """The listening socket and uvicorn's Config options that keep to these limits."""
        guard = Guard(self.connections())
        options = {
            "http": guarded_protocol(self, guard),
            "timeout_keep_alive": self.keep_alive,
            "h11_max_incomplete_event_size": self.max_header_bytes,
            "backlog": ACCEPT_BURST,
        }
        return listening_socket(host, port, guard), options


@dataclass
class Guard:
    """The connections open, counted from accept() to connection_lost."""

    cap: int
    open: int = 0
    protocols: set[GuardedProtocol] = field(default_factory=set)

    def shed_one(self) -> bool:
        """Close the connection that has waited longest without a request; False when all are busy."""
        idle = [p for p in self.protocols if p.waiting_for_request() and not p.transport.is_closing()]
        if not idle:
            return False
        min(idle, key=lambda p: p.idle_since).transport.close()
        return True


class GuardedSocket(socket.socket):
    guard: Guard

    def accept(self) -> tuple[socket.socket, Any]:
        conn, address = super().accept()  # BlockingIOError when none waits: asyncio's end of a burst
        if self.guard.open >= self.guard.cap and not self.guard.shed_one():
            conn.close()  # every connection is busy with a request: no room for one more
            raise ConnectionAbortedError  # which asyncio passes over quietly
        self.guard.open += 1
        return conn, address


def listening_socket(host: str, port: int, guard: Guard) -> socket.socket:
    """A socket bound and listening at host:port; UNAVAILABLE naming the address when it cannot be."""
    try:
        sock = GuardedSocket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.guard = guard
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(ACCEPT_BURST)
        except OSError:
            sock.close()
            raise
    except OSError as e:
        raise LedgerError(Code.UNAVAILABLE, f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each whole request, counted by its Guard."""

    limits: ServerLimits
    guard: Guard
    _deadline: asyncio.TimerHandle | None = None
    idle_since = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.guard.protocols.add(self)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.guard.protocols.discard(self)
        self.guard.open -= 1
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
        self._deadline = self.loop.call_later(self.limits.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.waiting_for_request() and not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(limits: ServerLimits, guard: Guard) -> type[GuardedProtocol]:
    """The protocol class for one server, bound to its limits and its guard."""
    return type("ServerProtocol", (GuardedProtocol,), {"limits": limits, "guard": guard})
