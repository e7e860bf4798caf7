"""Parsers for the text that hosts give us. Each takes text and returns plain data, or raises
ParseError with a reason; no other exception may escape (the fuzz tests hold them to that)."""


import re

_DIGITS = re.compile(r"[0-9]+")


class ParseError(ValueError):
    """The input is not in the format the parser reads; the message says what was wrong."""


def is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '¹' and other digits int() refuses."""
    return bool(_DIGITS.fullmatch(text))
