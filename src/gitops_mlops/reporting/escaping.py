"""Text from user data (metric, slice, class and column names) made inert in the report.

The report is Markdown that GitHub renders in a pull request comment: a name must not end a
table cell, open a link, mention a user, start raw HTML or close a code block; inside a
Mermaid chart it must not end its string, open a directive (`%%{init: …}%%`) or start
another statement. On a terminal (`mlops runs`, `mlops diff`) it must not move the cursor
or split its line.
"""

from __future__ import annotations

import re
import unicodedata

LIMIT = 80  # characters of a name shown; longer names end with "…"

# What a Mermaid string may hold: letters and digits of any script, spaces and a few marks.
# Everything else (quotes, brackets, braces, %, #, ;, <, >, backticks, newlines) is "_".
_MERMAID_UNSAFE = re.compile(r"[^\w .,:+\-()/=…]")
_BACKTICKS = re.compile(r"`+")


def _printable(value: str, limit: int) -> str:
    """Control, format (bidirectional overrides) and separator characters as spaces, cut."""
    shown = "".join(
        " " if unicodedata.category(c)[0] in "CZ" and c != " " else c for c in value
    ).strip()
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def mermaid_text(value: str, limit: int = LIMIT) -> str:
    """A name inside a Mermaid string ("…"): only letters, digits and harmless marks."""
    return _MERMAID_UNSAFE.sub("_", _printable(value, limit)) or "_"


def markdown_code(value: str, in_table: bool = True, limit: int = LIMIT) -> str:
    """A name as a Markdown code span: shown as typed, never markup, link or mention.

    The fence is one backtick longer than the longest run inside; in a table, `|` is
    escaped as GitHub's tables need (the escape is removed before the span is read).
    """
    shown = _printable(value, limit) or " "
    longest = max((len(run) for run in _BACKTICKS.findall(shown)), default=0)
    fence = "`" * (longest + 1)
    if in_table:
        shown = shown.replace("|", "\\|")
    pad = " " if shown[0] == "`" or shown[-1] == "`" or longest else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def terminal_text(value: str) -> str:
    """A name on one terminal line (`mlops runs`, `mlops diff`): control characters (from a
    hand-edited file) shown escaped, so they can neither move the cursor nor split the line."""
    return value if value.isprintable() else value.encode("unicode_escape").decode("ascii")
