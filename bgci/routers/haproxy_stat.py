"""HAProxy's ``show stat`` (CSV): what bgci reads of it, for draining and for the bake."""

from __future__ import annotations

from collections.abc import Mapping

from bgci.model import Colour
from bgci.ports import Traffic


def backend_stats(text: str) -> dict[str, dict[str, str]]:
    """``show stat`` as backend name -> its BACKEND row, by column name."""
    header: list[str] = []
    rows: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if line.startswith("# "):
            header = line[2:].split(",")
            continue
        fields = line.split(",")
        if header and len(fields) > 2 and fields[1] == "BACKEND":
            rows[fields[0]] = dict(zip(header, fields, strict=False))
    return rows


def number(value: str | None) -> int:
    """A ``show stat`` cell as an integer (an empty cell is 0)."""
    return int(value) if value and value.isdigit() else 0


def traffic_of(rows: Mapping[str, Mapping[str, str]], backends: Mapping[Colour, str]
               ) -> dict[Colour, Traffic]:
    """Each colour's backend row as its traffic: HTTP requests (``req_tot``), 5xx answers
    (``hrsp_5xx``) and the mean total time of its last 1024 requests (``ttime``): HAProxy keeps
    no distribution of response times, so there is no percentile to read."""
    found: dict[Colour, Traffic] = {}
    for colour, backend in backends.items():
        row = rows.get(backend)
        if row is not None:
            found[colour] = Traffic(requests=number(row.get("req_tot")),
                                    errors=number(row.get("hrsp_5xx")),
                                    mean_ms=float(number(row.get("ttime"))))
    return found
