"""[[analysis]]: the entries as the configuration takes them (or refuses them, exit 2), and one
entry measured against a Prometheus HTTP API stand-in (the real server: tests/e2e)."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from bgci.analysis import Analysis, instant, render
from bgci.config import load_config
from bgci.errors import ConfigError
from bgci.settings import AnalysisConfig

ENTRY = ('[[analysis]]\nname = "errors"\nprometheus = "http://127.0.0.1:9090"\n'
         'query = "sum(rate(x[1m]))"\nmax = 0.1\n')


def load(tmp_path: Path, text: str, sets: tuple[str, ...] = ()) -> Any:
    (tmp_path / "bgci.toml").write_text('app = "shop"\n' + text, encoding="utf-8")
    return load_config(cwd=tmp_path, environ={}, overrides=sets)


def test_entries_are_read_from_an_array_of_tables(tmp_path: Path) -> None:
    config = load(tmp_path, "[switch]\nbake = 30\n" + ENTRY + ENTRY.replace('"errors"', '"slow"'))
    assert [(a.name, a.max, a.min, a.interval, a.count) for a in config.analysis] == [
        ("errors", 0.1, -math.inf, 10.0, 3), ("slow", 0.1, -math.inf, 10.0, 3)]


def test_set_takes_the_whole_array_inline(tmp_path: Path) -> None:
    config = load(tmp_path, "[switch]\nbake = 5\n", (
        "analysis=[{name='up', prometheus='http://p:9090', query='min(up)', min=1, count=1}]",))
    assert config.analysis == [AnalysisConfig("up", "http://p:9090", "min(up)", count=1, min=1)]


@pytest.mark.parametrize(("text", "says"), [
    (ENTRY, "switch.bake = 0 turns it off"),
    ("[switch]\nbake = 5\n" + ENTRY.replace('max = 0.1\n', ''), "neither max nor min"),
    ("[switch]\nbake = 5\n" + ENTRY.replace('query = "sum(rate(x[1m]))"\n', ''), "has no query"),
    ("[switch]\nbake = 5\n" + ENTRY + ENTRY, "another entry is called 'errors'"),
    ("[switch]\nbake = 5\n" + ENTRY.replace("http://", "tcp://"), "http(s):// URL"),
    ("[switch]\nbake = 5\n" + ENTRY + "maximum = 1\n", "unknown key 'analysis[1].maximum'"),
    ("analysis = 3\n[switch]\nbake = 5\n", "analysis must be an array of tables"),
    ("[switch]\nlog_errors = \"(\"\n", "switch.log_errors is not a regular expression"),
    ("[switch]\nmax_log_errors = -2\n", "switch.max_log_errors must be -1"),
    ("[switch]\nmax_p95_ms = -1\n", "switch.max_p95_ms must be 0 (off) or more"),
])
def test_a_wrong_entry_or_key_is_exit_2_naming_it(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert info.value.exit_code == 2 and says in str(info.value), str(info.value)
    assert str(tmp_path / "bgci.toml") in str(info.value)


class FakePrometheus(ThreadingHTTPServer):
    """``/api/v1/query`` answering from ``answers`` (query -> the JSON ``data`` or an error)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.asked: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)["query"][0]
                server.asked.append(query)
                data = server.answers[query]
                body = json.dumps({"status": "error", "error": data} if isinstance(data, str)
                                  else {"status": "success", "data": data}).encode()
                self.send_response(200 if not isinstance(data, str) else 400)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    server = FakePrometheus()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def vector(*values: float) -> dict[str, Any]:
    return {"resultType": "vector", "result": [{"metric": {}, "value": [0, str(v)]}
                                               for v in values]}


def test_a_query_must_come_down_to_one_number(prom: FakePrometheus) -> None:
    url = f"http://127.0.0.1:{prom.server_address[1]}"
    prom.answers = {"one": vector(0.5), "none": vector(), "two": vector(1, 2),
                    "nan": vector(math.nan), "bad": "parse error: unexpected end",
                    "scalar": {"resultType": "scalar", "result": [0, "3"]}}
    assert instant(url, "one") == 0.5 and instant(url, "scalar") == 3.0
    for query, says in (("none", "no data (add `or vector(0)`"), ("two", "2 series"),
                        ("nan", "NaN"), ("bad", "refused the query: parse error")):
        with pytest.raises(ValueError, match=None) as info:
            instant(url, query)
        assert says in str(info.value), (query, str(info.value))


def test_a_measurement_out_of_bounds_fails_the_analysis_with_every_value(
        prom: FakePrometheus) -> None:
    url = f"http://127.0.0.1:{prom.server_address[1]}"
    query = render('rate(x{app="{{app}}",colour="{{colour}}"}[1m])', "shop", "green", "sha")
    assert query == 'rate(x{app="shop",colour="green"}[1m])'
    prom.answers = {query: vector(0.01)}
    analysis = Analysis(AnalysisConfig("errors", url, query, interval=0.01, count=3, max=0.05),
                        query)
    analysis.measure()
    prom.answers[query] = vector(0.2)
    analysis.measure()
    assert analysis.done and "0.2 > max 0.05" in analysis.failed
    check = analysis.check()
    assert check.outcome == "failed" and "values seen: 0.01, 0.2" in check.message
    assert prom.asked == [query, query] and f"query: {query}" in check.output
