"""The model server: a plain ASGI application speaking the Open Inference Protocol over REST.

No web framework: routing is a handful of paths, so each request costs the HTTP parsing
(uvicorn with httptools, in C) plus JSON and predict. Malformed input gets a 4xx with a V2
error body and the server stays up; only a bug in the model itself answers 500.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np

from gitops_mlops.serving import protocol
from gitops_mlops.serving.batching import Batcher, Busy, Columns, Outputs
from gitops_mlops.serving.metrics import Metrics
from gitops_mlops.serving.model import ServedModel

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MAX_BODY_BYTES = 8 * 1024 * 1024
_INFER = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
_MODEL = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready)?$")


def _json(status: int, body: Any) -> tuple[int, bytes, bytes]:
    return status, json.dumps(body, separators=(",", ":")).encode(), b"application/json"


def _error(status: int, message: str) -> tuple[int, bytes, bytes]:
    return _json(status, {"error": message})


class Server:
    def __init__(self, model: ServedModel, max_body: int = MAX_BODY_BYTES) -> None:
        self.model = model
        self.max_body = max_body
        self.metrics = Metrics()
        self.batcher = Batcher(self._predict)
        self.ready = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        body, too_large = await self._body(scope, receive)
        if too_large:
            status, payload, kind = _error(413, f"request body over {self.max_body} bytes")
        else:
            status, payload, kind = await self.handle(method, path, body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", kind),
                    (b"content-length", str(len(payload)).encode()),
                    *([(b"retry-after", b"1")] if status == 503 else []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        self.metrics.observe(_route(path), status, time.perf_counter() - started)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.ready = False
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _body(self, scope: Scope, receive: Receive) -> tuple[bytes, bool]:
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return b"", True
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return b"", True
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks), False

    async def handle(self, method: str, path: str, body: bytes) -> tuple[int, bytes, bytes]:
        if path == "/metrics" and method == "GET":
            text = self.metrics.render(model_calls=self.batcher.calls)
            return 200, text.encode(), b"text/plain; version=0.0.4"
        if path in ("/v2/health/live", "/v2/health/ready"):
            ready = self.ready or path.endswith("live")
            return _json(
                200 if ready else 503, {"live": True} if path.endswith("live") else {"ready": ready}
            )
        if path == "/v2":
            return _json(200, {"name": "gitops-mlops", "version": "2", "extensions": []})
        infer = _INFER.match(path)
        if infer:
            if method != "POST":
                return _error(405, "use POST for inference")
            return await self._infer(infer[1], infer[2], body)
        described = _MODEL.match(path)
        if described and method == "GET":
            unknown = self._unknown(described[1], described[2])
            if unknown:
                return unknown
            if described[3]:
                return _json(200, {"name": self.model.name, "ready": self.ready})
            return _json(200, protocol.metadata(self.model))
        return _error(404, f"no route {method} {path}")

    def _unknown(self, name: str, version: str | None) -> tuple[int, bytes, bytes] | None:
        if name != self.model.name:
            return _error(404, f"unknown model {name!r}; this server serves {self.model.name!r}")
        if version is not None and version != self.model.version:
            return _error(
                404, f"unknown version {version!r}; this server serves {self.model.version!r}"
            )
        return None

    async def _infer(self, name: str, version: str | None, body: bytes) -> tuple[int, bytes, bytes]:
        unknown = self._unknown(name, version)
        if unknown:
            return unknown
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            return _error(400, f"the body is not valid JSON: {err}")
        except RecursionError:  # `[[[[…` thousands deep: no tensor nests like that
            return _error(400, "the body is not valid JSON: nested too deeply")
        try:
            columns, rows = protocol.columns(self.model, request)
            outputs = protocol.requested_outputs(self.model, request)
        except protocol.V2Error as err:
            return _error(err.status, err.message)
        in_order = {f.name: columns[f.name] for f in self.model.features}
        try:
            predicted = await self.batcher.predict(in_order, outputs)
        except (ValueError, TypeError) as err:  # values the model cannot use (text for a number)
            return _error(422, f"the model could not use these inputs: {err}")
        except Busy as err:
            return _error(503, str(err))
        response: dict[str, Any] = {
            "model_name": self.model.name,
            "model_version": self.model.version,
            "outputs": [self._output(name, values, rows) for name, values in predicted.items()],
        }
        if isinstance(request.get("id"), str):
            response["id"] = request["id"]
        return _json(200, response)

    def _predict(self, columns: Columns, outputs: tuple[str, ...]) -> Outputs:
        """Runs in the batcher's thread, on one request's rows or on several requests' rows."""
        frame = protocol.frame(self.model, columns)
        # Output names were checked against the model's outputs: both are methods of the model.
        return {name: np.asarray(getattr(self.model.model, name)(frame)) for name in outputs}

    def _output(self, name: str, values: np.ndarray, rows: int) -> dict[str, Any]:
        if name == "predict_proba":
            return {
                "name": name,
                "datatype": "FP64",
                "shape": [rows, values.shape[1]],
                "data": values.ravel().tolist(),
            }
        return {
            "name": name,
            "datatype": self.model.predict_datatype,
            "shape": [rows],
            "data": values.tolist(),
        }


def _route(path: str) -> str:
    """A bounded label for metrics (no model names or ids from clients)."""
    if path.endswith("/infer"):
        return "infer"
    if path.startswith("/v2/health"):
        return "health"
    if path.startswith("/v2"):
        return "metadata"
    return "metrics" if path == "/metrics" else "other"
