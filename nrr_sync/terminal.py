"""Text for a terminal: Stripe data is shown as text, never as terminal commands.

Customer names and metadata come from whoever can write to the Stripe account. An escape
sequence in them (``\\x1b[2J``, a fake prompt, a hyperlink, a right-to-left override)
must not reach the terminal, so table and markdown output drop control characters;
csv and json keep the data exact (json escapes them anyway).
"""

from __future__ import annotations

import re

# C0 and C1 controls (but tab and newline), DEL, and the invisible direction marks and
# overrides that reorder what a line seems to say.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile("[\t\n\r\x0b\x0c\x85\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` without control characters; newlines and tabs stay."""
    return _CONTROLS.sub("", text)


def one_line(text) -> str:
    """A table cell: printable, and line breaks become spaces so the table stays a table."""
    return printable(_LINE_BREAKS.sub(" ", str(text)))
