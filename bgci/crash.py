"""What a colour that died printed, in the words on-call needs first: its exception, then its
last lines (a Python app's traceback ends in the line that says what went wrong)."""

from __future__ import annotations

TRACEBACK = "Traceback (most recent call last):"


def exceptions(output: str, most: int = 3) -> list[str]:
    """The exception lines that end the Python tracebacks in ``output``, each once, in order (a
    server's own "worker failed to boot" comes after the app's exception that caused it)."""
    lines = output.splitlines()
    found: list[str] = []
    for start in (i for i, line in enumerate(lines) if line.rstrip().endswith(TRACEBACK)):
        for line in lines[start + 1:]:
            text = line.split("] ", 1)[-1] if line.startswith("[") else line
            if text and not text[0].isspace() and not text.startswith(("^", "~")):
                if text.strip() not in found:
                    found.append(text.strip())
                break
    return found[:most]


def describe(what: str, output: str, lines: int = 15) -> str:
    """``what`` happened (e.g. "container shop-green exited with code 3"), the exception the app
    died of, and its last ``lines`` lines of output."""
    died_of = " / ".join(exceptions(output))
    tail = "\n".join(output.rstrip().splitlines()[-lines:])
    return (f"{what}" + (f": {died_of}" if died_of else "")
            + (f"; its last lines:\n{tail}" if tail else "; it printed nothing"))
