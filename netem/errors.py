"""Errors raised for scenario problems, with the key path that caused them.

A scenario author fixes a YAML file, not a stack trace: every semantic error
names the dotted key (relative to the `network:` section) and says what is
wrong; trace-file errors also name the file and the line.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A network configuration that validates field by field but cannot be run."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class TraceFormatError(ValueError):
    """A malformed trace file; `str()` reads `file:line: what is wrong`."""

    def __init__(self, file: str, line: int | None, message: str):
        where = f"{file}:{line}" if line is not None else str(file)
        super().__init__(f"{where}: {message}")
        self.file = str(file)
        self.line = line
        self.message = message


class trace_errors:
    """Turn file problems into ConfigError at `path` (message names file and line)."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is not None and issubclass(et, (TraceFormatError, FileNotFoundError, OSError)):
            raise ConfigError(self.path, str(ev)) from ev
        return False
