"""A hostile registry for tests: a loopback HTTP server in front of a real registry.

Every request is forwarded to the real registry (CNCF distribution) and its answer passed
back, except where a rule answers instead: with another status, other bytes, a redirect, a
challenge naming another host, or a body that never ends. So the client is attacked with the
registry's real answers everywhere else. Started and stopped by the test (a thread in this
process); `seen` keeps every request it got, headers included (what credentials went where).
"""

from __future__ import annotations

import http.client
import http.server
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Iterable[bytes] = b""  # an iterable is streamed (no Content-Length)
    raw: Iterable[bytes] | None = None  # written as is instead: no status line of ours


Rule = Callable[[Request], Answer | None]


@dataclass
class Hostile:
    host: str  # 127.0.0.x:port, what the client is pointed at
    upstream: str
    rules: list[Rule] = field(default_factory=list)
    seen: list[Request] = field(default_factory=list)

    def forward(self, request: Request) -> Answer:
        """The real registry's answer (its Location headers pointed back at this server)."""
        connection = http.client.HTTPConnection(self.upstream, timeout=30)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
            connection.request(request.method, request.path, body=request.body, headers=headers)
            answer = connection.getresponse()
            body = answer.read()
            out = {k: v for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP}
        finally:
            connection.close()
        for name, value in out.items():
            if name.lower() == "location":
                out[name] = value.replace(f"//{self.upstream}/", f"//{self.host}/")
        return Answer(answer.status, out, body)


def drip(first: bytes = b"{", every: float = 0.2) -> Iterator[bytes]:
    """A body that never ends: one byte at a time, forever (each in time for a read timeout)."""
    yield first
    while True:
        time.sleep(every)
        yield b" "


def firehose(chunk: int = 64 * 1024) -> Iterator[bytes]:
    """A body that never ends, as fast as the client reads it."""
    block = b" " * chunk
    while True:
        yield block


@contextmanager
def hostile(upstream: str, bind: str = "127.0.0.1") -> Iterator[Hostile]:
    server = http.server.ThreadingHTTPServer((bind, 0), _Handler)
    server.daemon_threads = True
    state = Hostile(f"{bind}:{server.server_address[1]}", upstream)
    server.hostile = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def token_service(bind: str) -> Iterator[Hostile]:
    """A token endpoint on another host: records who asked and hands out a token."""
    with hostile("", bind) as state:
        state.rules.append(lambda _: Answer(200, {}, b'{"token": "stolen"}'))
        yield state


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one exchange per connection; a streamed body ends at close

    def _handle(self) -> None:
        state: Hostile = self.server.hostile  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            self.command, self.path, dict(self.headers.items()), self.rfile.read(length)
        )
        state.seen.append(request)
        answer = next((a for rule in state.rules if (a := rule(request)) is not None), None)
        if answer is None:
            answer = state.forward(request)
        if answer.raw is not None:
            self._stream(answer.raw)
            return
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if isinstance(answer.body, bytes):
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)
            return
        self.end_headers()
        self._stream(answer.body)

    def _stream(self, chunks: Iterable[bytes]) -> None:
        try:
            for chunk in chunks:
                self.wfile.write(chunk)
                self.wfile.flush()
        except OSError:
            return  # the client gave up: what it should do

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _handle

    def log_message(self, format: str, *args: object) -> None:
        pass
