"""Unit tests must not reach the network or start processes by accident."""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import pytest


class _Forbidden(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def _no_network_or_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise _Forbidden("unit tests may not open connections or start processes")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
