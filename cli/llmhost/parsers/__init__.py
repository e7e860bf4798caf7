"""Parsers for the text that hosts give us. Each takes text and returns plain data, or raises
ParseError with a reason; no other exception may escape (the fuzz tests hold them to that)."""


class ParseError(ValueError):
    """The input is not in the format the parser reads; the message says what was wrong."""
