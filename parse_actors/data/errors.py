"""The one error the data side raises for bad input."""

from __future__ import annotations


class DataError(Exception):
    """Bad data configuration or data files.

    `path` is the dotted key path relative to the `data:` section
    (e.g. "partition.alpha", "schedule[2].agent"); str() is "path: message",
    one line, so the engine can prefix "data." and show it as is.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(path, message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"
