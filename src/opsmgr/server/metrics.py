"""Request counters and latency histograms, rendered in the Prometheus text format for ``/metrics``.

Owns only in-process counters; nothing here is persisted. May import the standard library only.
"""

from __future__ import annotations

import threading
from collections import defaultdict

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = defaultdict(lambda: [0] * (len(_BUCKETS) + 1))
        self._sums: dict[str, float] = defaultdict(float)
        self._gauges: dict[str, float] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, status)] += 1
            buckets = self._buckets[route]
            for i, bound in enumerate(_BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
            buckets[-1] += 1
            self._sums[route] += seconds

    def set_gauge(self, name: str, value: float) -> None:
        with self._lock:
            self._gauges[name] = value

    def render(self) -> str:
        lines = [
            "# HELP opsmgr_http_requests_total HTTP requests by method, route template and status.",
            "# TYPE opsmgr_http_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), n in sorted(self._requests.items()):
                labels = f'method="{method}",route="{_esc(route)}",status="{status}"'
                lines.append(f"opsmgr_http_requests_total{{{labels}}} {n}")
            lines += [
                "# HELP opsmgr_http_request_duration_seconds HTTP request latency by route template.",
                "# TYPE opsmgr_http_request_duration_seconds histogram",
            ]
            for route, buckets in sorted(self._buckets.items()):
                r = _esc(route)
                for bound, n in zip(_BUCKETS, buckets, strict=False):
                    lines.append(
                        f'opsmgr_http_request_duration_seconds_bucket{{route="{r}",le="{bound}"}} {n}'
                    )
                lines.append(
                    f'opsmgr_http_request_duration_seconds_bucket{{route="{r}",le="+Inf"}} {buckets[-1]}'
                )
                lines.append(
                    f'opsmgr_http_request_duration_seconds_sum{{route="{r}"}} {self._sums[route]:.6f}'
                )
                lines.append(f'opsmgr_http_request_duration_seconds_count{{route="{r}"}} {buckets[-1]}')
            for name, value in sorted(self._gauges.items()):
                lines += [f"# TYPE {name} gauge", f"{name} {value}"]
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
