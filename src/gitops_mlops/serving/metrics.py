"""Prometheus text exposition of request counts, errors, latency and connections.

The server runs one process per core, and a scrape reaches one of them: so every process
counts into its own row of one table in shared memory (mapped before the processes fork),
and /metrics sums the rows. The series are the server's totals, whichever process answers;
`mlops_workers` says how many processes there are. Each row has one writer (its process,
on its event loop), and a reader sees each number whole (aligned 8-byte stores).
"""

from __future__ import annotations

import mmap

import numpy as np

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ROUTES = ("infer", "health", "metadata", "metrics", "other")
STATUSES = (200, 400, 404, 405, 413, 415, 422, 500, 503)
CLOSE_REASONS = ("header_timeout", "body_timeout", "idle_timeout", "evicted", "refused")

# One row: [ready, model calls, closes..., requests (route x status)..., buckets (route x
# bucket)..., seconds (route)...].
_READY, _CALLS, _CLOSES = 0, 1, 2
_REQUESTS = _CLOSES + len(CLOSE_REASONS)
_BUCKETS = _REQUESTS + len(ROUTES) * len(STATUSES)
_SECONDS = _BUCKETS + len(ROUTES) * (len(BUCKETS) + 1)
WIDTH = _SECONDS + len(ROUTES)


def shared_table(workers: int) -> np.ndarray:
    """A zeroed table, one row per worker, in memory the forked workers share."""
    memory = mmap.mmap(-1, workers * WIDTH * 8)  # anonymous and shared: survives fork
    return np.frombuffer(memory, dtype=np.float64).reshape(workers, WIDTH)


class Metrics:
    def __init__(self, table: np.ndarray | None = None, row: int = 0) -> None:
        self.table = shared_table(1) if table is None else table
        self.row = self.table[row]

    def set_ready(self, ready: bool) -> None:
        self.row[_READY] = 1.0 if ready else 0.0

    def model_call(self) -> None:
        self.row[_CALLS] += 1

    def closed(self, reason: str) -> None:
        self.row[_CLOSES + CLOSE_REASONS.index(reason)] += 1

    def observe(self, route: str, status: int, seconds: float) -> None:
        r = ROUTES.index(route)
        # Every status the server sends is in STATUSES; one it did not plan for counts as 500.
        s = STATUSES.index(status) if status in STATUSES else STATUSES.index(500)
        self.row[_REQUESTS + r * len(STATUSES) + s] += 1
        bucket = next((i for i, b in enumerate(BUCKETS) if seconds <= b), len(BUCKETS))
        self.row[_BUCKETS + r * (len(BUCKETS) + 1) + bucket] += 1
        self.row[_SECONDS + r] += seconds

    def render(self) -> str:
        total = self.table.sum(axis=0)
        requests = total[_REQUESTS:_BUCKETS].reshape(len(ROUTES), len(STATUSES))
        buckets = total[_BUCKETS:_SECONDS].reshape(len(ROUTES), len(BUCKETS) + 1)
        lines = [
            "# HELP mlops_workers Server processes (one per CPU the container is given).",
            "# TYPE mlops_workers gauge",
            f"mlops_workers {len(self.table)}",
            "# HELP mlops_worker_requests_total Requests each worker process answered (the"
            " other series are totals over all of them).",
            "# TYPE mlops_worker_requests_total counter",
            *(
                f'mlops_worker_requests_total{{worker="{i}"}} {count:.0f}'
                for i, count in enumerate(self.table[:, _REQUESTS:_BUCKETS].sum(axis=1))
            ),
            "# HELP mlops_model_calls_total Calls into the model; requests share calls when"
            " they arrive while the model is busy.",
            "# TYPE mlops_model_calls_total counter",
            f"mlops_model_calls_total {total[_CALLS]:.0f}",
            "# HELP mlops_connections_closed_total Connections the server closed: timeouts of"
            " each phase, evicted to make room, refused when full.",
            "# TYPE mlops_connections_closed_total counter",
        ]
        for i, reason in enumerate(CLOSE_REASONS):
            lines.append(
                f'mlops_connections_closed_total{{reason="{reason}"}} {total[_CLOSES + i]:.0f}'
            )
        lines += [
            "# HELP mlops_requests_total Requests answered, by route and status.",
            "# TYPE mlops_requests_total counter",
        ]
        for r, route in enumerate(ROUTES):
            for s, status in enumerate(STATUSES):
                if requests[r, s]:
                    lines.append(
                        f'mlops_requests_total{{route="{route}",status="{status}"}} '
                        f"{requests[r, s]:.0f}"
                    )
        lines += [
            "# HELP mlops_request_errors_total Requests answered with a 4xx or 5xx status.",
            "# TYPE mlops_request_errors_total counter",
        ]
        errors = requests[:, [s for s, status in enumerate(STATUSES) if status >= 400]].sum(1)
        for r, route in enumerate(ROUTES):
            if errors[r]:
                lines.append(f'mlops_request_errors_total{{route="{route}"}} {errors[r]:.0f}')
        lines += [
            "# HELP mlops_request_seconds Time to answer a request.",
            "# TYPE mlops_request_seconds histogram",
        ]
        for r, route in enumerate(ROUTES):
            if not buckets[r].any():
                continue
            cumulative = np.cumsum(buckets[r])
            for bound, count in zip((*BUCKETS, float("inf")), cumulative, strict=True):
                label = "+Inf" if bound == float("inf") else f"{bound:g}"
                lines.append(
                    f'mlops_request_seconds_bucket{{route="{route}",le="{label}"}} {count:.0f}'
                )
            lines.append(f'mlops_request_seconds_sum{{route="{route}"}} {total[_SECONDS + r]:.6f}')
            lines.append(f'mlops_request_seconds_count{{route="{route}"}} {cumulative[-1]:.0f}')
        return "\n".join(lines) + "\n"

    def ready_rows(self) -> np.ndarray:
        return self.table[:, _READY] > 0
