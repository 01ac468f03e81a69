"""Prometheus text exposition of request counts, errors and a latency histogram."""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.sums: dict[str, float] = defaultdict(float)

    def observe(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
            counts = self.buckets[route]
            index = next((i for i, b in enumerate(BUCKETS) if seconds <= b), len(BUCKETS))
            counts[index] += 1
            self.sums[route] += seconds

    def render(self, model_calls: int) -> str:
        with self._lock:
            lines = [
                "# HELP mlops_model_calls_total Calls into the model; requests share calls when"
                " they arrive while the model is busy.",
                "# TYPE mlops_model_calls_total counter",
                f"mlops_model_calls_total {model_calls}",
                "# HELP mlops_requests_total Requests answered, by route and status.",
                "# TYPE mlops_requests_total counter",
            ]
            for (route, status), count in sorted(self.requests.items()):
                lines.append(f'mlops_requests_total{{route="{route}",status="{status}"}} {count}')
            lines += [
                "# HELP mlops_request_errors_total Requests answered with a 4xx or 5xx status.",
                "# TYPE mlops_request_errors_total counter",
            ]
            errors: dict[str, int] = defaultdict(int)
            for (route, status), count in self.requests.items():
                if status >= 400:
                    errors[route] += count
            for route, count in sorted(errors.items()):
                lines.append(f'mlops_request_errors_total{{route="{route}"}} {count}')
            lines += [
                "# HELP mlops_request_seconds Time to answer a request.",
                "# TYPE mlops_request_seconds histogram",
            ]
            for route, counts in sorted(self.buckets.items()):
                total = 0
                for bound, count in zip((*BUCKETS, float("inf")), counts, strict=True):
                    total += count
                    label = "+Inf" if bound == float("inf") else f"{bound:g}"
                    lines.append(
                        f'mlops_request_seconds_bucket{{route="{route}",le="{label}"}} {total}'
                    )
                lines.append(f'mlops_request_seconds_sum{{route="{route}"}} {self.sums[route]:.6f}')
                lines.append(f'mlops_request_seconds_count{{route="{route}"}} {total}')
            return "\n".join(lines) + "\n"
