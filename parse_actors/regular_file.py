"""Open a file only when it is a regular file: without following a link at its
last component and without blocking on the open. A FIFO, a device, a socket or a
link found where a run directory should hold a file (checkpoint.pt,
scenario.yaml on resume) is one line naming the file, not a hang or a read of
something outside the run."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from parse_actors.errors import ScenarioError

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """`path` opened for binary reading; ScenarioError when it is missing, a link or
    not a regular file. O_NONBLOCK makes opening a FIFO return at once (it is then
    refused by fstat on the descriptor that was opened, so nothing can be swapped in
    between the check and the read)."""
    path = Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ScenarioError(str(path), "", "no such file") from None
    except OSError as e:
        if e.errno == errno.ELOOP or path.is_symlink():
            raise ScenarioError(str(path), "", "is a symbolic link, not a regular file (links are not "
                                               "followed)") from None
        raise ScenarioError(str(path), "", f"cannot read: {e.strerror or e}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a file")
            raise ScenarioError(str(path), "", f"not a regular file ({kind})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The whole content of regular file `path`, refused above `max_bytes`."""
    with open_regular(path) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ScenarioError(str(path), "", f"larger than {max_bytes} bytes")
    return data
