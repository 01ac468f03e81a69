"""The server's one error: a request it cannot answer, with the status and what to send instead.

The serving package runs in the image without the rest of gitops_mlops (and its error tree):
a V2Error never leaves the server; it becomes a 4xx response with `{"error": message}`.
"""

from __future__ import annotations


class V2Error(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
