"""Counters as routers keep them: the Prometheus text format, per-group sums, windows between two
readings (a restarted router included) and a percentile from a histogram."""

from __future__ import annotations

import math

from bgci.metrics import add, cumulative, p95_ms, parse_text, quantile, since, traffic_by
from bgci.ports import Traffic

TRAEFIK = """# HELP traefik_service_request_duration_seconds How long it took
# TYPE traefik_service_request_duration_seconds histogram
traefik_service_request_duration_seconds_bucket{code="200",service="shop-blue@file",le="0.1"} 90
traefik_service_request_duration_seconds_bucket{code="200",service="shop-blue@file",le="+Inf"} 100
traefik_service_request_duration_seconds_count{code="200",service="shop-blue@file"} 100
traefik_service_request_duration_seconds_bucket{code="502",service="shop-blue@file",le="0.1"} 5
traefik_service_request_duration_seconds_bucket{code="502",service="shop-blue@file",le="+Inf"} 5
traefik_service_request_duration_seconds_count{code="502",service="shop-blue@file"} 5
traefik_service_request_duration_seconds_count{code="200",service="other@file"} 7
traefik_config_reloads_total 3
"""


def test_the_text_format_is_summed_per_group_with_5xx_apart() -> None:
    samples = parse_text(TRAEFIK)
    assert ("traefik_config_reloads_total", {}, 3.0) in samples
    found = traffic_by(samples, "traefik_service_request_duration_seconds",
                       lambda labels: {"shop-blue@file": "blue"}.get(labels.get("service", "")))
    assert found == {"blue": Traffic(requests=105, errors=5,
                                     buckets=((0.1, 95), (math.inf, 105)))}


def test_a_window_is_the_difference_and_a_restart_starts_over() -> None:
    before = Traffic(100, 2, ((0.1, 90), (math.inf, 100)))
    after = Traffic(150, 3, ((0.1, 120), (math.inf, 150)))
    assert since(before, after) == Traffic(50, 1, ((0.1, 30), (math.inf, 50)))
    restarted = Traffic(10, 0, ((0.1, 10), (math.inf, 10)))
    assert since(after, restarted) == restarted, "counters that went back: the router restarted"
    assert add(since(before, after), restarted).requests == 60


def test_a_percentile_is_interpolated_within_its_bucket() -> None:
    histogram = cumulative([0.02] * 90 + [0.4] * 10)
    assert histogram[-1] == (math.inf, 100)
    value = quantile(0.95, histogram)
    assert value is not None and 0.3 < value <= 0.5, value
    assert quantile(0.5, histogram) is not None and quantile(0.5, histogram) <= 0.025  # type: ignore[operator]
    assert quantile(0.95, ()) is None and p95_ms(Traffic()) is None
    beyond = cumulative([20.0] * 10)  # slower than the last finite bound: that bound is all we know
    assert quantile(0.95, beyond) == 10.0
