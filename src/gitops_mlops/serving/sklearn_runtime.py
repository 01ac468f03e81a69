"""The `sklearn` runtime: the trained scikit-learn model itself, on a pandas DataFrame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gitops_mlops.serving import model as bundle_model
from gitops_mlops.serving.model import ServedModel
from gitops_mlops.serving.runtimes import Columns, Loaded, Outputs


def frame(served: ServedModel, columns: Columns) -> pd.DataFrame:
    """The columns as the DataFrame the model was trained on (names, in training order)."""
    return pd.DataFrame({f.name: columns[f.name] for f in served.features}, copy=False)


def prepare() -> None:
    """The modules a model load needs, imported before the workers fork."""
    bundle_model.import_skops()


def load(model_dir: Path) -> Loaded:
    served = bundle_model.load(model_dir)

    def predict(columns: Columns, outputs: tuple[str, ...]) -> Outputs:
        rows = frame(served, columns)
        # Output names were checked against the model's outputs: both are its methods.
        return {name: np.asarray(getattr(served.model, name)(rows)) for name in outputs}

    # A scikit-learn call costs milliseconds: it runs in a worker thread, so the event loop
    # reads the next requests meanwhile, and they share the next call.
    return Loaded(served, predict, inline=False)
