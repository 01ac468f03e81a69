"""The server's errors: a request it cannot answer (V2Error), a model it will not load.

The serving package runs in the image without the rest of gitops_mlops (and its error tree):
a V2Error never leaves the server; it becomes a 4xx response with `{"error": message}`.
"""

from __future__ import annotations


class V2Error(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class UntrustedModelError(Exception):
    """A model file that would build types we do not trust, or that is no skops file.

    Here, not in `trust`, so that a runtime that never reads a skops file (onnx) raises it
    without importing the skops audit (zipfile and its compressors) at every start.
    """
