"""Builds the app in each uvicorn worker process (the model is loaded once per worker)."""

from __future__ import annotations

import os
from pathlib import Path

from gitops_mlops.serving.app import Server
from gitops_mlops.serving.model import load


def create() -> Server:
    return Server(load(Path(os.environ.get("MLOPS_MODEL_DIR", "/model"))))
