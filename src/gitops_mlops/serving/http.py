"""HTTP/1.1 for the model server: asyncio, the llhttp parser (httptools), a limit on every phase.

Why not uvicorn: it has no deadline for a request's headers or body, and a connection counts
against the process's file descriptors until the client closes it. A thousand clients that
send half a request (slowloris) exhaust a 1,024-descriptor container, `accept` fails, and the
kubelet's health checks go unanswered. Here:

- each phase has a deadline: the request's headers (`header_seconds` from the first byte, or
  from the connection's start), its body (`body_seconds` from the end of the headers) and the
  wait for the next request on a kept-alive connection (`idle_seconds`). A stalled request
  gets `408` and the connection is closed; an idle one is closed;
- at most `max_connections` connections are open, fewer than the descriptors the process may
  hold. A new connection over the cap closes the connection that has waited longest for its
  client (idle, or still sending its request), so a fresh request (a health check) is always
  read and answered. Connections whose request is being answered are never closed for this;
- headers are limited in size and number (431), bodies in size (413), malformed requests get
  400; pipelined requests are answered in order; `Expect: 100-continue` is honoured.

The parser is llhttp, in C; everything here is bookkeeping. One periodic sweep, twice a second,
enforces the deadlines, so a request costs no timer of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, cast
from urllib.parse import unquote

import httptools

SWEEP_SECONDS = 0.5
LINGER_SECONDS = 2.0
RESERVED_DESCRIPTORS = 64  # listening socket, event loop, model files, threads, logs
MAX_HEADERS = 100

REASONS = {
    100: b"Continue",
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    415: b"Unsupported Media Type",
    422: b"Unprocessable Content",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


@dataclass(frozen=True)
class Limits:
    header_bytes: int = 64 * 1024
    body_bytes: int = 8 * 1024 * 1024
    header_seconds: float = 10.0
    body_seconds: float = 30.0
    idle_seconds: float = 5.0
    max_connections: int = 4096  # lowered to fit the descriptor limit, see `fitted`

    def fitted(self, descriptors: int) -> Limits:
        """These limits with the connection cap below the process's descriptor limit."""
        cap = max(1, min(self.max_connections, descriptors - RESERVED_DESCRIPTORS))
        return Limits(
            self.header_bytes,
            self.body_bytes,
            self.header_seconds,
            self.body_seconds,
            self.idle_seconds,
            cap,
        )


@dataclass
class Request:
    method: str
    path: str
    headers: dict[bytes, bytes]  # names in lower case
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: tuple[tuple[bytes, bytes], ...] = ()


Handler = Callable[[Request], "Response | Awaitable[Response]"]
Closed = Callable[[str], None]  # told each time the server closes a connection, with why


class _Stop(Exception):
    """Raised from a parser callback: the request is refused with this response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _error(status: int, message: str) -> Response:
    return Response(status, b'{"error":"' + message.encode() + b'"}')


# What a connection waits for from its client (unless it is busy answering).
WAITING = 0  # the first byte of the next request (a new or kept-alive connection)
HEADERS = 1  # the rest of a request's headers
BODY = 2  # the rest of its body


class Connections:
    """The open connections of one process: the cap, the deadlines, the drain."""

    def __init__(self, limits: Limits, closed: Closed) -> None:
        self.limits = limits
        self.closed = closed
        self.open: set[HttpConnection] = set()
        self.draining = False
        self.date = b""
        self._sweeper: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweep(loop)

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()

    def admit(self, connection: HttpConnection) -> bool:
        """Make room for a new connection; False when every open one is being answered."""
        if len(self.open) >= self.limits.max_connections:
            waiting = [c for c in self.open if not c.busy]
            if not waiting:
                self.closed("refused")
                return False
            min(waiting, key=lambda c: c.since).drop("evicted")
        self.open.add(connection)
        return True

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        self.date = formatdate(usegmt=True).encode()
        for connection in [c for c in self.open if not c.busy and c.deadline < now]:
            connection.expire()
        self._sweeper = loop.call_later(SWEEP_SECONDS, self._sweep, loop)

    def drain(self) -> None:
        """Stop keeping connections alive: idle ones close now, busy ones after answering."""
        self.draining = True
        for connection in list(self.open):
            if not connection.busy and connection.phase == WAITING:
                connection.drop(None)


class HttpConnection(asyncio.Protocol):
    def __init__(self, handler: Handler, connections: Connections) -> None:
        self.handler = handler
        self.connections = connections
        self.limits = connections.limits
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.phase = WAITING
        self.busy = False  # answering a request: never timed out or evicted
        self.since = self.deadline = 0.0
        self.served = 0
        self.pending: deque[tuple[Request, bool]] = deque()
        self.task: asyncio.Task[Response] | None = None
        self.writing_paused = False
        self.lingering = False  # refused: the rest of what the client sends is dropped
        # The request being parsed.
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._header_bytes = self._header_count = 0
        self._body: list[bytes] = []
        self._body_bytes = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass, but acts as one).
        self.transport = cast(asyncio.Transport, transport)
        if not self.connections.admit(self):
            refused = _error(503, "too many connections; retry")
            self.transport.write(self._head(refused, False) + refused.body)
            self.transport.close()
            self.transport = None
            return
        self._wait(self.limits.header_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.open.discard(self)
        if self.task is not None:
            self.task.cancel()  # nobody will read the answer
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # the rest of a refused request: read, so the client gets our answer
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as err:
            cause = err.__context__
            self._refuse(cause.response if isinstance(cause, _Stop) else _error(500, "bug"))
        except httptools.HttpParserUpgrade:
            pass  # no protocol upgrades: the request is answered as plain HTTP and closed
        except httptools.HttpParserError:
            self._refuse(_error(400, "malformed HTTP request"))

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._next()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._url, self._headers, self._header_bytes, self._header_count = b"", {}, 0, 0
        self._body, self._body_bytes = [], 0
        self.phase = HEADERS
        if self.served and not self.busy:  # a kept-alive connection: the clock starts now
            self.deadline = time.monotonic() + self.limits.header_seconds

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_header(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header(len(name) + len(value))
        self._header_count += 1
        if self._header_count > MAX_HEADERS:
            raise _Stop(_error(431, f"more than {MAX_HEADERS} header fields"))
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        length = self._headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.limits.body_bytes:
            raise _Stop(_error(413, f"request body over {self.limits.body_bytes} bytes"))
        self.phase = BODY
        if self.busy:  # pipelined behind a request being answered: no go-ahead yet
            return
        self.deadline = time.monotonic() + self.limits.body_seconds
        if self._headers.get(b"expect", b"").lower() == b"100-continue" and self.transport:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.body_bytes:  # chunked, or more than it said
            raise _Stop(_error(413, f"request body over {self.limits.body_bytes} bytes"))
        self._body.append(body)

    def on_message_complete(self) -> None:
        path = self._url.partition(b"?")[0].decode("latin-1")
        if "%" in path:
            path = unquote(path)
        request = Request(
            self.parser.get_method().decode("latin-1"),
            path,
            self._headers,
            b"".join(self._body),
        )
        self.phase = WAITING
        self.pending.append((request, self.parser.should_keep_alive()))
        if len(self.pending) > 1 and self.transport is not None:
            self.transport.pause_reading()  # pipelined: read on once these are answered
        if not self.busy:
            self._next()

    # answering

    def _next(self) -> None:
        while self.pending and not self.writing_paused and self.transport and not self.lingering:
            request, keep_alive = self.pending[0]
            self.busy = True
            try:
                result = self.handler(request)
            except Exception:  # a bug: the client hears 500, the log has the traceback
                traceback.print_exc(file=sys.stderr)
                result = _error(500, "internal server error")
            if not isinstance(result, Response):
                self.task = asyncio.ensure_future(result)
                self.task.add_done_callback(self._answered)
                return
            self._write(result, keep_alive)
        if self.transport is not None and self.busy:
            # Waiting for the client again: its next request, or to read our answers.
            self.busy = False
            if not self.pending:
                self.transport.resume_reading()
            self._wait()

    def _answered(self, task: asyncio.Task[Response]) -> None:
        self.task = None
        if task.cancelled() or self.transport is None or self.lingering:
            return
        error = task.exception()
        if error is not None:
            traceback.print_exception(error, file=sys.stderr)
        response = task.result() if error is None else _error(500, "internal server error")
        self._write(response, self.pending[0][1])
        self._next()

    def _write(self, response: Response, keep_alive: bool) -> None:
        self.pending.popleft()
        self.served += 1
        keep_alive = keep_alive and not self.connections.draining
        assert self.transport is not None
        self.transport.write(self._head(response, keep_alive) + response.body)
        if not keep_alive:
            self.pending.clear()
            self.transport.close()
            self.transport = None

    def _head(self, response: Response, keep_alive: bool) -> bytes:
        lines = [
            b"HTTP/1.1 %d %s" % (response.status, REASONS.get(response.status, b"")),
            b"date: " + self.connections.date,
            b"content-type: " + response.content_type,
            b"content-length: %d" % len(response.body),
        ]
        lines += [name + b": " + value for name, value in response.headers]
        if not keep_alive:
            lines.append(b"connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n"

    # deadlines and closing

    def _wait(self, seconds: float | None = None) -> None:
        """From now on, waiting for the client: its next request or the rest of this one."""
        if seconds is None:
            limits = self.limits
            by_phase = (limits.idle_seconds, limits.header_seconds, limits.body_seconds)
            seconds = by_phase[self.phase]
        self.since = time.monotonic()
        self.deadline = self.since + seconds

    def _count_header(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.header_bytes:
            raise _Stop(_error(431, f"request headers over {self.limits.header_bytes} bytes"))

    def expire(self) -> None:
        """The deadline of the current phase passed."""
        if self.lingering:
            self.drop(None)
        elif self.phase == WAITING:
            self.drop("idle_timeout" if self.served else "header_timeout")
        else:
            timeout = "header_timeout" if self.phase == HEADERS else "body_timeout"
            self._refuse(_error(408, "the request did not arrive in time"), timeout)

    def drop(self, reason: str | None) -> None:
        """Close without a word (idle, or evicted to make room)."""
        if reason is not None:
            self.connections.closed(reason)
        self.connections.open.discard(self)
        if self.transport is not None:
            self.transport.abort()
            self.transport = None

    def _refuse(self, response: Response, reason: str | None = None) -> None:
        """Answer a request that cannot be read any further, and close.

        The client may still be sending (a body over the limit, say). Closing a socket with
        unread data resets the connection, and the client would see the reset instead of our
        answer: so the connection lingers, reading and dropping what arrives, for a moment.
        """
        if reason is not None:
            self.connections.closed(reason)
        self.pending.clear()
        if self.transport is None:
            return
        self.transport.write(self._head(response, False) + response.body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.lingering, self.busy = True, False
        self._wait(LINGER_SECONDS)


async def serve(
    handler: Handler,
    sock: Any,
    limits: Limits,
    closed: Closed,
    stopping: asyncio.Event,
    drain_seconds: float = 10.0,
) -> None:
    """Serve on a listening socket until `stopping` is set, then drain and return."""
    loop = asyncio.get_running_loop()
    connections = Connections(limits, closed)
    connections.start(loop)
    server = await loop.create_server(
        lambda: HttpConnection(handler, connections), sock=sock, backlog=2048
    )
    await stopping.wait()
    # Stop accepting and close this process's descriptor of the listening socket. Once the
    # parent has closed its own (workers.supervise), nothing holds it and the port has no
    # listener: the kernel refuses a new connection at once, and the client can retry
    # elsewhere. While any process held it, the kernel would complete the handshake and queue
    # the connection for nobody, until the exit reset it. (One the kernel queued before the
    # close and the loop had not yet accepted is reset now.)
    server.close()
    connections.drain()
    deadline = time.monotonic() + drain_seconds
    while connections.open and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for connection in list(connections.open):
        connection.drop(None)
    connections.stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 1)
