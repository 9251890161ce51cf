"""Text people type, made safe for bounded columns and for other people's screens.

Names and titles lose control, zero-width and bidi-override characters (they hide or reorder text: "‮" can
make a name read backwards) and are cut on a grapheme boundary, so a cut never splits a letter from its
accent or an emoji from its modifier. Free text (broadcasts, instructions) keeps its line breaks.
"""

from __future__ import annotations

import unicodedata

import regex

# Unicode "other" categories that never belong in a name: Cc (controls), Cf (format: zero-width joiners and
# spaces, bidi overrides and isolates, soft hyphen), Co (private use), Cs (surrogates), Cn (unassigned).
_DROP = {"Cc", "Cf", "Co", "Cs", "Cn"}
_GRAPHEME = regex.compile(r"\X")


def _visible(char: str, keep_newlines: bool) -> bool:
    if keep_newlines and char == "\n":
        return True
    return unicodedata.category(char) not in _DROP


def cut(text: str, limit: int) -> str:
    """At most `limit` code points, never splitting a grapheme cluster."""
    if len(text) <= limit:
        return text
    kept = 0
    for match in _GRAPHEME.finditer(text):
        if match.end() > limit:
            break
        kept = match.end()
    return text[:kept]


def clean_name(text: str | None, limit: int) -> str:
    """One line: invisible and control characters removed, whitespace collapsed, cut to `limit`."""
    if not text:
        return ""
    visible = "".join(c if _visible(c, False) else " " if c in "\t\r\n" else "" for c in text)
    return cut(" ".join(visible.split()), limit).strip()


def clean_text(text: str | None, limit: int) -> str:
    """Several lines allowed (broadcasts, payment instructions); otherwise as `clean_name`."""
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    visible = "".join(c if _visible(c, True) else " " if c == "\t" else "" for c in text)
    lines = [" ".join(line.split()) for line in visible.split("\n")]
    return cut("\n".join(lines).strip(), limit).strip()
