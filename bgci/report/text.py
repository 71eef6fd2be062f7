"""Turn arbitrary process output into text that is safe to embed in XML, Markdown or dotenv."""

from __future__ import annotations

import re

# Terminal escape sequences, most specific first: OSC and string controls carry a payload up
# to a terminator, so they must match before the generic two-byte ESC form eats only "ESC ]".
_ANSI = re.compile(
    r"""
      \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)     # OSC: window titles, hyperlinks
    | \x1b[PX^_][^\x1b]*\x1b\\              # DCS / SOS / PM / APC strings
    | \x1b\[[0-?]*[ -/]*[@-~]               # CSI: colours, cursor movement, erase line
    | \x9b[0-?]*[ -/]*[@-~]                 # 8-bit CSI
    | \x1b[ -/]+[0-~]                       # nF: charset selection, e.g. "ESC ( B" from tput
    | \x1b[0-~]                             # two-byte escapes (ESC 7, ESC M, ...)
    """,
    re.VERBOSE,
)

# Characters XML 1.0 forbids (C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF) plus the
# ones it discourages (DEL, C1 controls, noncharacters): no CI viewer renders them usefully.
_NOT_XML = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
    + "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(1, 17))
    + "]"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s+")


def fix_surrogates(text: str | bytes) -> str:
    """``text`` as a string that encodes to UTF-8: invalid bytes and lone surrogates become U+FFFD.

    Process output decoded with ``errors="surrogateescape"`` carries undecodable bytes as lone
    surrogates; surrogate pairs (from UTF-16 sources) are joined into the character they spell.
    """
    if isinstance(text, bytes):
        return text.decode("utf-8", "replace")
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (colours, cursor moves, titles, hyperlinks)."""
    return _ANSI.sub("", text)


def clean_text(text: str | bytes) -> str:
    """Multi-line text safe for XML 1.0: no ANSI escapes, no illegal characters, ``\\n`` newlines.

    A lone ``\\r`` (progress bars redrawing a line) becomes a newline so no output is lost.
    """
    text = strip_ansi(fix_surrogates(text))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _NOT_XML.sub("", text)


def one_line(text: str | bytes) -> str:
    """``clean_text`` on one line: each run of whitespace (newlines, tabs) becomes one space."""
    return _WHITESPACE.sub(" ", clean_text(text)).strip()
