"""MLflow tracking: one MLflow run per pipeline run, through MLflow's own client.

The server is MLFLOW_TRACKING_URI (with MLflow's own MLFLOW_TRACKING_TOKEN / USERNAME /
PASSWORD for auth), never the spec. Every call is bounded: a health check with a short
timeout first, and few HTTP retries, so a server that is down costs seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gitops_mlops import data_url
from gitops_mlops.errors import MlopsError

URI_ENV = "MLFLOW_TRACKING_URI"
HEALTH_TIMEOUT = 5.0  # seconds
# MLflow's client reads these from the process environment; unless the user set them, keep
# a failing server from holding the run for minutes (its defaults: 7 retries, 120 s each).
CLIENT_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
MAX_PARAM = 6000  # characters MLflow keeps of a param value


class TrackingError(MlopsError):
    """The tracking server could not take the run; the message says where and why."""


@dataclass(frozen=True)
class TrackedRun:
    """What one pipeline run logs."""

    experiment: str
    name: str
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]
    artifacts: Sequence[Path]


@dataclass(frozen=True)
class Logged:
    run_id: str
    experiment_id: str
    url: str  # the run's page in the MLflow UI, or the tracking URI's run reference


def display(uri: str) -> str:
    """The tracking URI without user info, query or fragment: safe to print."""
    parts = urlsplit(uri)
    if not parts.netloc:  # no `//`: a path, or a mistyped `user:pw@host:port` without scheme
        head, slash, rest = uri.partition("/")
        bare = head.rpartition("@")[2] + slash + rest
        return bare.split("?")[0].split("#")[0]
    return data_url.display(uri)


def tracking_uri(env: Mapping[str, str]) -> str | None:
    return env.get(URI_ENV, "").strip() or None


def start(uri: str, run: TrackedRun) -> tuple[Any, Logged]:
    """Check the server answers, create the run and log everything in `run`; the client and
    where the run is. Call `finish` after any last artifacts."""
    _check_form(uri)
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise TrackingError(
            "tracking.mlflow needs MLflow's client: pip install 'gitops-mlops[mlflow]' "
            "(the reusable workflow and the setup action: add mlflow to their `extras` input)"
        ) from None
    _check_health(uri)
    for name, value in CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    try:
        # Creating the client already resolves the URI's stores: an unsupported scheme or
        # MLflow's file store raises here, and must only warn like any other failure.
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(run.experiment)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(run.experiment)
        )
        created = client.create_run(experiment_id, run_name=run.name, tags=dict(run.tags))
        run_id = created.info.run_id
        _log(client, run_id, run)
    except Exception as err:  # MLflow raises its own exceptions and requests' ones
        raise TrackingError(f"MLflow at {display(uri)}: {_first_line(err)}{_hint(uri)}") from None
    return client, Logged(run_id, experiment_id, _run_url(uri, experiment_id, run_id))


# Schemes MLflow takes without `//`; any other URI without `//` is a mistyped server address.
BARE_SCHEMES = ("file", "databricks", "databricks-uc", "uc")


def _check_form(uri: str) -> None:
    parts = urlsplit(uri)
    if "://" not in uri and parts.scheme.lower() not in BARE_SCHEMES:
        raise TrackingError(
            f"{URI_ENV} {display(uri)!r} is not a URL: a tracking server's is "
            "http://HOST:PORT or https://HOST (a local store: sqlite:///PATH)"
        )
    if "@" in parts.netloc:
        # urllib would take `user:pw@host` for the host name; MLflow reads basic auth only
        # from its own variables.
        raise TrackingError(
            f"MLflow at {display(uri)}: the URI carries a user name or password, which MLflow "
            "does not use: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead "
            "(the reusable workflow's mlflow-tracking-username and mlflow-tracking-password "
            "secrets)"
        )


def _hint(uri: str) -> str:
    if urlsplit(uri).scheme.lower() == "file":
        return (
            " (MLflow's file store needs MLFLOW_ALLOW_FILE_STORE=true; "
            "a local SQLite store works as is: sqlite:///PATH)"
        )
    return ""


def _log(client: Any, run_id: str, run: TrackedRun) -> None:
    from mlflow.entities import Metric, Param

    params = [Param(k, v[:MAX_PARAM]) for k, v in sorted(run.params.items())]
    metrics = [Metric(k, v, 0, 0) for k, v in sorted(run.metrics.items())]
    for start in range(0, max(len(params), len(metrics)), 100):  # MLflow's batch limit
        client.log_batch(
            run_id, metrics=metrics[start : start + 100], params=params[start : start + 100]
        )
    for path in run.artifacts:
        client.log_artifact(run_id, str(path))


def finish(uri: str, client: Any, logged: Logged, artifacts: Sequence[Path]) -> None:
    try:
        for path in artifacts:
            client.log_artifact(logged.run_id, str(path))
        # MLflow prints its own "View run" lines here; our progress line has the link.
        with contextlib.redirect_stdout(io.StringIO()):
            client.set_terminated(logged.run_id, "FINISHED")
    except Exception as err:
        raise TrackingError(f"MLflow at {display(uri)}: {_first_line(err)}") from None


def _check_health(uri: str) -> None:
    scheme = urlsplit(uri).scheme
    if scheme not in ("http", "https"):
        return  # a local store (file:, sqlite:, databricks profiles): MLflow reaches it itself
    url = uri.rstrip("/") + "/health"
    request = urllib.request.Request(url, method="GET")  # noqa: S310 - http(s) only, above
    try:
        with urllib.request.urlopen(request, timeout=HEALTH_TIMEOUT) as answer:  # noqa: S310
            if answer.status == 200:
                return
            raise TrackingError(f"MLflow at {display(uri)} answers {answer.status} on /health")
    except urllib.error.HTTPError as err:
        raise TrackingError(f"MLflow at {display(uri)} answers {err.code} on /health") from None
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, ConnectionRefusedError):
            raise TrackingError(
                f"MLflow at {display(uri)} refuses connections: nothing listens there"
            ) from None
        if isinstance(reason, TimeoutError):
            raise TrackingError(
                f"MLflow at {display(uri)} does not answer within {HEALTH_TIMEOUT:g} s"
            ) from None
        raise TrackingError(f"MLflow at {display(uri)} cannot be reached ({reason})") from None


def _run_url(uri: str, experiment_id: str, run_id: str) -> str:
    base = display(uri).rstrip("/")
    if urlsplit(uri).scheme in ("http", "https"):
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"{base} (run {run_id})"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    if text.startswith("{"):  # MLflow's REST errors carry a JSON body
        with contextlib.suppress(ValueError):
            text = str(json.loads(text).get("message", text))
    return (text.splitlines()[0] if text else type(err).__name__)[:300]
