"""The one error type users see for bad input, and its one-line rendering."""

from __future__ import annotations


class ScenarioError(Exception):
    """A scenario (or an option overriding it) is invalid.

    Rendered as `FILE: KEY.PATH: what was expected, got what`; the CLI prints it
    on one line and exits with code 2. `path` is the dotted key path as the
    user wrote it ("" for whole-document problems such as invalid YAML).
    """

    def __init__(self, file: str | None, path: str, message: str):
        self.file = file
        self.path = path
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [one_line(p) for p in (self.file, self.path) if p]
        parts.append(one_line(" ".join(str(self.message).split())))
        return ": ".join(parts)


def one_line(text: object) -> str:
    """`text` with line breaks, tabs and other control characters escaped.

    Keys and file names come from the user's file: a key holding a newline or a
    terminal escape sequence must not split the error over two lines or repaint
    the terminal.
    """
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in s)
