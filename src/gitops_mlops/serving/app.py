"""The model server's routes: the Open Inference Protocol (KServe V2) over REST, and /metrics.

No web framework: routing is a handful of paths, so a request costs the HTTP parsing (llhttp,
in C), the JSON and the model call. Health, metadata and metrics are answered at once; an
inference request is parsed at once and waits only for the model. Malformed input gets a 4xx
with a V2 error body and the server stays up; only a bug in the model itself answers 500.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable
from typing import Any

from gitops_mlops.serving import protocol
from gitops_mlops.serving.batching import Batcher, Busy, Outcome
from gitops_mlops.serving.binary import HEADER
from gitops_mlops.serving.http import Request, Response
from gitops_mlops.serving.metrics import Metrics
from gitops_mlops.serving.runtimes import Loaded

_INFER = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
_MODEL = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready)?$")
_RETRY = ((b"retry-after", b"1"),)
SERVER_METADATA = {"name": "gitops-mlops", "version": "2", "extensions": ["binary_tensor_data"]}


def _json(status: int, body: Any) -> Response:
    return Response(status, json.dumps(body, separators=(",", ":")).encode())


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


class Server:
    def __init__(self, loaded: Loaded, metrics: Metrics | None = None) -> None:
        self.model = loaded.model
        self.metrics = metrics or Metrics()
        self.batcher = Batcher(
            loaded.predict, inline=loaded.inline, on_call=self.metrics.model_call
        )
        self.ready = True
        self._live = _json(200, {"live": True})

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        """The response, or (inference) an awaitable that gives it once the model has run."""
        started = time.perf_counter()
        path = request.path
        infer = _INFER.match(path)
        if infer and request.method == "POST":
            answer = self._infer(infer[1], infer[2], request, started)
            if not isinstance(answer, Response):
                return answer
            response = answer
        else:
            response = self._describe(request.method, path)
        self.metrics.observe(_route(path), response.status, time.perf_counter() - started)
        return response

    def _describe(self, method: str, path: str) -> Response:
        if path == "/metrics" and method == "GET":
            return Response(200, self.metrics.render().encode(), b"text/plain; version=0.0.4")
        if path == "/v2/health/live":
            return self._live
        if path == "/v2/health/ready":
            return _json(200 if self.ready else 503, {"ready": self.ready})
        if path == "/v2":
            return _json(200, SERVER_METADATA)
        if _INFER.match(path):
            return _error(405, "use POST for inference")
        described = _MODEL.match(path)
        if described and method == "GET":
            unknown = self._unknown(described[1], described[2])
            if unknown:
                return unknown
            if described[3]:
                return _json(200, {"name": self.model.name, "ready": self.ready})
            return _json(200, protocol.metadata(self.model))
        return _error(404, f"no route {method} {path}")

    def _unknown(self, name: str, version: str | None) -> Response | None:
        if name != self.model.name:
            return _error(404, f"unknown model {name!r}; this server serves {self.model.name!r}")
        if version is not None and version != self.model.version:
            return _error(
                404, f"unknown version {version!r}; this server serves {self.model.version!r}"
            )
        return None

    def _infer(
        self, name: str, version: str | None, request: Request, started: float
    ) -> Response | Awaitable[Response]:
        unknown = self._unknown(name, version)
        if unknown:
            return unknown
        encoding = request.headers.get(b"content-encoding", b"identity").lower()
        if encoding != b"identity":
            return _error(
                415, f"Content-Encoding {encoding.decode('latin-1')!r}: send the body uncompressed"
            )
        try:
            parsed = protocol.parse(self.model, request.body, request.headers.get(HEADER))
        except protocol.V2Error as err:
            return _error(err.status, err.message)
        try:
            return self.batcher.submit(
                parsed.columns,
                parsed.outputs,
                lambda outcome: self._answer(parsed, outcome, started),
            )
        except Busy as err:  # the queue is full: at once, so the client can go elsewhere
            response = _error(503, str(err))
            response.headers = _RETRY
            return response

    def _answer(self, parsed: protocol.Parsed, outcome: Outcome, started: float) -> Response:
        """The response to an inference request, once the model has answered it."""
        if isinstance(outcome, ValueError | TypeError):  # values the model cannot use
            response = _error(422, f"the model could not use these inputs: {outcome}")
        elif isinstance(outcome, Exception):  # a bug in the model: the client hears 500
            raise outcome
        else:
            body, header_length = protocol.answer(self.model, parsed, outcome)
            if header_length is None:
                response = Response(200, body)
            else:
                response = Response(
                    200,
                    body,
                    b"application/octet-stream",
                    ((HEADER, str(header_length).encode()),),
                )
        self.metrics.observe("infer", response.status, time.perf_counter() - started)
        return response


def _route(path: str) -> str:
    """A bounded label for metrics (no model names or ids from clients)."""
    if path.endswith("/infer"):
        return "infer"
    if path.startswith("/v2/health"):
        return "health"
    if path.startswith("/v2"):
        return "metadata"
    return "metrics" if path == "/metrics" else "other"
