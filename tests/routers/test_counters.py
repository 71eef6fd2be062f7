"""What bgci reads of a router, from the text each one gives: HAProxy's ``show stat`` and
``show map``, and nginx's JSON access log (its format in the site bgci writes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bgci.errors import InfraError
from bgci.routers.haproxy import live_in
from bgci.routers.haproxy_stat import backend_stats, traffic_of
from bgci.routers.nginx_conf import render_site
from bgci.routers.nginx_log import LIMIT, AccessLog, parse_lines

COLUMNS = ("pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp",
           "ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg",
           "downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max",
           "check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max",
           "req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime",
           "rtime,ttime,")
SHOW_STAT = "# " + ",".join(COLUMNS) + "\n" + """\
live,FRONTEND,,,0,2,262124,12,1,2,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,2,,,,0,140,0,0,3,0,,0,2,143,,,0,0,0,0,,,,,,,,
be_blue,app,0,0,1,2,,100,1,2,,0,,0,0,0,0,UP,1,1,0,,0,5,0,,1,4,1,,100,,2,0,,2,,,,0,95,0,0,5,0,,,,,0,0,,,,,3,,,0,0,1,4,
be_blue,BACKEND,0,0,1,2,26212,100,1,2,0,0,,0,0,0,0,UP,1,1,0,,0,5,0,,1,4,0,,100,,1,0,,2,,,,0,95,0,0,5,0,,,,100,0,0,0,0,0,0,3,,,0,0,1,4,
be_green,BACKEND,0,0,0,0,26212,0,0,0,0,0,,0,0,0,0,UP,0,0,0,,0,5,0,,1,5,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,
"""


def test_haproxy_show_stat_per_colour_backend() -> None:
    rows = backend_stats(SHOW_STAT)
    assert set(rows) == {"be_blue", "be_green"}, "backends only, not servers or frontends"
    found = traffic_of(rows, {"blue": "be_blue", "green": "be_green"})
    assert (found["blue"].requests, found["blue"].errors, found["blue"].mean_ms) == (100, 5, 4.0)
    assert found["blue"].buckets == (), "HAProxy keeps no distribution"
    assert (found["green"].requests, found["green"].errors) == (0, 0)


def test_the_nginx_site_logs_each_request_as_json_but_not_bgcis_own_question() -> None:
    site = render_site("my-shop", {"blue": "10.0.0.1:8000", "green": "10.0.0.2:8000"},
                       flags="/r/live", live_listen="127.0.0.1:8080",
                       preview_listen="127.0.0.1:8081", access_log="/r/access.log")
    # the colour is the one the server block chose from the flags for this request
    assert "log_format bgci_my_shop escape=json '{\"t\":$msec,\"c\":\"$bgci_" in site
    assert site.count("access_log /r/access.log bgci_my_shop;") == 2, "the live and preview blocks"
    assert site.count("access_log off;") == 2, "the colour endpoint of each server block"
    plain = render_site("my-shop", {}, flags="/r/live", live_listen=":8080", preview_listen=":8081")
    assert "access_log" not in plain and "log_format" not in plain


def line(colour: str, status: int, seconds: float) -> bytes:
    return json.dumps({"t": 1.5, "c": colour, "s": status, "d": seconds}).encode() + b"\n"


def test_nginx_log_lines_are_counted_once_from_where_bgci_first_looked(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(line("blue", 200, 0.01) * 5)  # before bgci looked: not counted

    def read(offset: int) -> tuple[int, bytes]:
        data = log.read_bytes()
        return len(data), data[offset:]

    counted = AccessLog(read, lambda: log.write_bytes(b""))
    assert counted.counters() is not None  # the first look: where counting starts
    with log.open("ab") as out:
        out.write(line("green", 200, 0.02) * 3 + line("green", 502, 0.5) + b'{"t": 2, "c": "gr')
    first = counted.counters()
    assert first is not None and first.colours["green"].requests == 4
    assert first.colours["green"].errors == 1 and "blue" not in first.colours
    with log.open("ab") as out:
        out.write(b'een", "s": 200, "d": 0.01}\nnot json\n')  # the line being written, finished
    second = counted.counters()
    assert second is not None and second.colours["green"].requests == 5
    assert second.colours["green"].buckets[-1][1] == 5
    assert parse_lines(b"not json\n" + line("purple", 200, 0.1)) == {}


def test_a_big_nginx_log_is_emptied_when_bgci_first_looks(tmp_path: Path) -> None:
    emptied: list[bool] = []
    counted = AccessLog(lambda offset: (LIMIT + 1, b""), lambda: emptied.append(True))
    counted.counters()
    assert emptied == [True] and counted.offset == 0


def test_haproxy_live_is_read_from_the_map_and_an_unread_map_is_an_error() -> None:
    assert live_in("0x55d0 live green\n0x55d1 preview blue\n", "router") == "green"
    assert live_in("0x55d0 live none\n0x55d1 preview blue\n", "router") is None
    # an empty or cut-off answer (seen under load) is not "nothing is live": a stage that took
    # it so would "heal" the router by switching it
    for answer in ("", "\n", "0x55d1 preview blue\n"):
        with pytest.raises(InfraError) as raised:
            live_in(answer, "router bgci-shop-router")
        assert "could not be read" in raised.value.message and raised.value.exit_code == 3
