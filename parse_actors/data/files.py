"""Reading the files `data.path` points at without trusting them.

Rules, the same for every dataset reader:

- Only the files a format names are looked at (fixed relative paths, or one
  folder listing where the format is "one file per clip"), never a recursive
  walk; every one must be a regular file, opened without blocking (a FIFO or
  a device is refused, never read), whose real path stays inside the dataset
  folder (a link out of it is refused).
- .npy and .npz hold numpy arrays, never pickles: object, structured and
  complex dtypes are refused from the header, and nothing is unpickled.
- A header's shape and dtype are checked against the bytes the file (or zip
  member) really holds before anything is allocated, and the arrays one load
  brings into memory are bounded (parse_actors.memory).
- Contents are checked where they are read: NaN/infinity (first bad sample
  named), labels (integers, in range, first bad row named), a zip member's
  CRC (read to its end).
- Every failure is DataError("path", "<file>: <array or row>: what is wrong"):
  one line; callers add the scenario file and the `data.` key.
"""

from __future__ import annotations

import io
import math
import os
import stat
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from .. import memory
from .errors import DataError

NUMBERS = "biuf"  # dtype kinds a data array may have: bool, signed, unsigned, float
MAX_HEADER = 10_000  # numpy's own cap on an .npy header (bytes)
MAX_MEMBERS = 10_000  # arrays in one .npz
MAX_LISTED = 1_000_000  # entries in one folder a format lists (CREMA-D: 7,442 clips)
_MAGIC = b"\x93NUMPY"
# what numpy's and zipfile's readers raise on a damaged file
_READ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError,
                OverflowError, UnicodeDecodeError)


def fail(where: object, message: str) -> DataError:
    """The one error of this module: `data.path: <where>: <message>`."""
    return DataError("path", f"{where}: {message}")


def _why(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# ---------------------------------------------------------------- where files may be


def inside(root: Path, p: Path) -> Path:
    """`p`, which must exist and whose real path must stay inside `root`'s (no link out of it)."""
    try:
        real = p.resolve(strict=True)
    except FileNotFoundError:
        raise fail(p, "missing") from None
    except (OSError, RuntimeError) as e:  # a link loop, a name too long, ...
        raise fail(p, f"cannot be resolved ({_why(e)})") from None
    top = root.resolve()
    if real != top and top not in real.parents:
        raise fail(p, f"is a link to {real}, outside the dataset folder {root}")
    return p


def listing(folder: Path, suffix: str) -> list[Path]:
    """The entries of one folder ending in `suffix` (not recursive, bounded), sorted."""
    out = []
    try:
        with os.scandir(folder) as it:
            for i, e in enumerate(it):
                if i >= MAX_LISTED:
                    raise fail(folder, f"holds more than {MAX_LISTED:,} entries; is this the dataset folder?")
                if e.name.endswith(suffix):
                    out.append(folder / e.name)
    except OSError as e:
        raise fail(folder, f"cannot be listed ({e.strerror or _why(e)})") from None
    return sorted(out)


@contextmanager
def open_regular(p: Path) -> Iterator[tuple[io.BufferedReader, int]]:
    """(binary file, size) of a regular file; anything else is refused before a byte is read.

    O_NONBLOCK: opening a FIFO must not wait for a writer (it is then refused by fstat)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        raise fail(p, "missing") from None
    except OSError as e:
        raise fail(p, f"cannot be opened ({e.strerror or _why(e)})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise fail(p, "is a folder, expected a file")
        if not stat.S_ISREG(st.st_mode):
            raise fail(p, "is not a regular file (a FIFO, socket or device is never read)")
        os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh, st.st_size


# ---------------------------------------------------------------- .npy headers


@dataclass(frozen=True)
class NpyHeader:
    """What an .npy header declares, checked against the bytes that follow it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int  # header bytes before the data

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize

    @property
    def n(self) -> int:
        """Samples: the first axis (0 for a scalar)."""
        return self.shape[0] if self.shape else 0

    def describe(self) -> str:
        return f"shape {self.shape} {self.dtype}"


def read_header(fp, where: str, size: int, kinds: str = NUMBERS) -> NpyHeader:
    """The header of the .npy at the start of `fp`, which holds exactly `size` bytes."""
    head = fp.read(12)
    if len(head) < 10 or head[:6] != _MAGIC:
        raise fail(where, "not a numpy .npy array (no NUMPY magic)")
    version = (head[6], head[7])
    if version == (1, 0):
        start, hlen = 10, int.from_bytes(head[8:10], "little")
    elif version == (2, 0) and len(head) == 12:
        start, hlen = 12, int.from_bytes(head[8:12], "little")
    else:
        raise fail(where, f"npy format version {version[0]}.{version[1]} is not read (1.0 and 2.0 are)")
    if hlen > MAX_HEADER:
        raise fail(where, f"header of {hlen:,} bytes (numpy writes at most {MAX_HEADER:,})")
    blob = head + fp.read(start + hlen - len(head))
    if len(blob) < start + hlen:
        raise fail(where, "ends inside its header")
    try:
        reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran, dtype = reader(io.BytesIO(blob[8:]), max_header_size=MAX_HEADER)
    except Exception as e:  # noqa: BLE001 - numpy's parser of a hostile header: any failure is a bad file
        raise fail(where, f"unreadable .npy header ({_why(e)})") from None
    if dtype.hasobject:
        raise fail(where, "holds Python objects (dtype object); they would have to be unpickled, which parse-sim "
                          "never does: save plain numeric arrays")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise fail(where, f"structured dtype {dtype}; expected plain numbers")
    if dtype.kind not in kinds:
        raise fail(where, f"dtype {dtype} is not {_kinds_text(kinds)}")
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise fail(where, f"header has an invalid shape {shape}")
    h = NpyHeader(tuple(int(d) for d in shape), dtype, bool(fortran), start + hlen)
    data = size - h.offset
    if h.nbytes != data:
        raise fail(where, f"header says {h.describe()} ({memory.fmt_bytes(h.nbytes)}) but {memory.fmt_bytes(data)} "
                          "of data follow it: truncated, or the header is wrong")
    return h


def _kinds_text(kinds: str) -> str:
    names = {"b": "booleans", "i": "integers", "u": "integers", "f": "real numbers", "U": "text"}
    return " or ".join(dict.fromkeys(names[k] for k in kinds))


class Budget:
    """Bytes one load brings into memory, refused above parse_actors.memory's limit."""

    def __init__(self) -> None:
        self.used = 0

    def take(self, nbytes: int, where: str) -> None:
        why = memory.over_limit(self.used + nbytes, "loading the dataset's arrays")
        if why:
            raise fail(where, f"{why} (this file brings {memory.fmt_bytes(nbytes)})")
        self.used += nbytes


def _as_float32_bytes(h: NpyHeader) -> int:
    """What an array of `h` costs loaded, with its float32 copy when it is not float32."""
    return h.nbytes + (0 if h.dtype == np.float32 else h.count * 4)


def _read_data(fp, h: NpyHeader, where: str) -> np.ndarray:
    """The array whose header `read_header` checked (`fp` back at the file's start)."""
    try:
        fp.seek(0)
        a = npy_format.read_array(fp, allow_pickle=False, max_header_size=MAX_HEADER)
        if fp.read(1):  # nothing may follow (and a zip member's CRC is checked at its end)
            raise fail(where, "has bytes after its array")
    except DataError:
        raise
    except _READ_ERRORS as e:
        raise fail(where, f"cannot be read ({_why(e)}): the file is damaged") from None
    if a.shape != h.shape or a.dtype != h.dtype:  # pragma: no cover - numpy read what the header said
        raise fail(where, f"read {a.shape} {a.dtype}, header said {h.describe()}")
    return a


# ---------------------------------------------------------------- .npy files and .npz archives


def npy_header(p: Path, kinds: str = NUMBERS) -> NpyHeader:
    with open_regular(p) as (fp, size):
        return read_header(fp, str(p), size, kinds)


def load_npy(p: Path, budget: Budget | None = None, kinds: str = NUMBERS) -> np.ndarray:
    """The whole array of an .npy file (its cost, with a float32 copy, taken from `budget`)."""
    with open_regular(p) as (fp, size):
        h = read_header(fp, str(p), size, kinds)
        if budget is not None:
            budget.take(_as_float32_bytes(h), str(p))
        return _read_data(fp, h, str(p))


def map_npy(p: Path, kinds: str = NUMBERS) -> np.ndarray:
    """An .npy file memory-mapped read-only (nothing is read until indexed)."""
    with open_regular(p) as (fp, size):
        h = read_header(fp, str(p), size, kinds)
        if h.count == 0:
            return np.empty(h.shape, h.dtype)
        try:
            return np.memmap(fp, dtype=h.dtype, mode="r", offset=h.offset, shape=h.shape,
                             order="F" if h.fortran else "C")
        except _READ_ERRORS as e:
            raise fail(p, f"cannot be memory-mapped ({_why(e)})") from None


class Npz:
    """An .npz archive read member by member: `keys`, `header(key)`, `array(key)`."""

    def __init__(self, p: Path, kinds: str = NUMBERS) -> None:
        self.path = p
        self.kinds = kinds
        self._ctx = open_regular(p)
        fp, _ = self._ctx.__enter__()
        try:
            self._zip = zipfile.ZipFile(fp)
            infos = [i for i in self._zip.infolist() if not i.is_dir()]
        except _READ_ERRORS as e:
            self._ctx.__exit__(None, None, None)
            raise fail(p, f"not a readable .npz (zip) archive ({_why(e)})") from None
        except BaseException:
            self._ctx.__exit__(None, None, None)
            raise
        self._members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if not info.filename.endswith(".npy"):
                continue  # np.savez writes nothing else; anything else is not an array
            key = info.filename[:-4]
            if key in self._members:
                self.close()
                raise fail(p, f"holds two arrays named {key!r}")
            self._members[key] = info
        if len(self._members) > MAX_MEMBERS:
            self.close()
            raise fail(p, f"holds {len(self._members):,} arrays (at most {MAX_MEMBERS:,})")
        self._headers: dict[str, NpyHeader] = {}

    @property
    def keys(self) -> list[str]:
        return list(self._members)

    def where(self, key: str) -> str:
        return f"{self.path}: array {key!r}"

    @contextmanager
    def _open(self, key: str):
        try:
            with self._zip.open(self._members[key]) as fp:
                yield fp
        except DataError:
            raise
        except _READ_ERRORS as e:
            raise fail(self.where(key), f"cannot be read ({_why(e)}): the archive is damaged") from None

    def header(self, key: str) -> NpyHeader:
        if key not in self._headers:
            with self._open(key) as fp:
                self._headers[key] = read_header(fp, self.where(key), self._members[key].file_size, self.kinds)
        return self._headers[key]

    def array(self, key: str, budget: Budget | None = None) -> np.ndarray:
        """The array (read to its end, so a damaged member fails its CRC here)."""
        h = self.header(key)
        if budget is not None:
            budget.take(_as_float32_bytes(h), self.where(key))
        with self._open(key) as fp:
            return _read_data(fp, h, self.where(key))

    def close(self) -> None:
        self._zip.close()
        self._ctx.__exit__(None, None, None)

    def __enter__(self) -> Npz:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------- contents


def check_finite(a: np.ndarray, where: str, name_of=lambda i: f"sample {i}", chunk: int = 4096) -> None:
    """Refuse NaN and infinity, naming the first sample (first axis) that holds one."""
    if a.dtype.kind != "f" or a.size == 0:
        return
    for i in range(0, len(a), chunk):
        block = a[i:i + chunk]
        ok = np.isfinite(block).reshape(len(block), -1).all(axis=1)
        if not ok.all():
            raise fail(where, f"{name_of(i + int(np.argmin(ok)))} holds NaN or infinity (or a number beyond float32)")


def labels(a: np.ndarray, where: str, num_classes: int | None = None, first: int = 0,
           name_of=lambda i: f"sample {i}") -> np.ndarray:
    """Integer class labels, shape (n,) or (n, 1), each in first..first+num_classes-1
    when that is given; int64. The first bad one is named."""
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise fail(where, f"expected integer labels, one per sample (shape (n,)); got shape {a.shape}")
    if a.dtype.kind not in "iu":
        raise fail(where, f"expected integer labels (class ids), got {a.dtype}")
    if num_classes is not None and len(a):
        bad = (a < first) | (a > first + num_classes - 1)
        if bad.any():
            i = int(np.argmax(bad))
            raise fail(where, f"{name_of(i)}: label {a[i]} is outside {first}..{first + num_classes - 1}")
    if a.dtype == np.uint64 and len(a) and a.max() > np.iinfo(np.int64).max:
        i = int(np.argmax(a > np.iinfo(np.int64).max))
        raise fail(where, f"{name_of(i)}: label {a[i]} does not fit a 64-bit integer")
    return a.astype(np.int64)


class TextMatrix:
    """Numbers of a text file, one row per non-blank line; `line(i)` names row i's line."""

    def __init__(self, values: np.ndarray, lines: list[int]) -> None:
        self.values = values
        self.lines = lines

    def line(self, i: int) -> str:
        return f"line {self.lines[i]}"


def read_numbers(p: Path, budget: Budget, columns: int | None = None) -> TextMatrix:
    """A text matrix (whitespace-separated numbers, one row per line) as float64,
    every row with the same number of values (`columns` when given), all finite."""
    with open_regular(p) as (fp, size):
        budget.take(5 * size, str(p))  # the text, and at most one value per 2 bytes at 8 bytes each
        try:
            text = fp.read().decode("utf-8")
        except UnicodeDecodeError as e:
            raise fail(p, f"not UTF-8 text (byte {e.start})") from None
        except OSError as e:
            raise fail(p, f"cannot be read ({e.strerror or _why(e)})") from None
    lines = [i for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if not lines:
        raise fail(p, "holds no numbers")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = np.loadtxt(io.StringIO(text), dtype=np.float64, ndmin=2, comments=None)
    except ValueError as e:
        raise fail(p, _first_bad_line(text) or str(e).splitlines()[0]) from None
    if a.shape[0] != len(lines):  # pragma: no cover - loadtxt and splitlines disagree on a line break
        raise fail(p, f"{a.shape[0]} rows parsed from {len(lines)} non-blank lines (unusual line breaks)")
    m = TextMatrix(a, lines)
    if columns is not None and a.shape[1] != columns:
        raise fail(p, f"expected {columns} number(s) per line, found {a.shape[1]} on line {lines[0]}")
    check_finite(a, str(p), m.line)
    return m


def _first_bad_line(text: str) -> str | None:
    """Where numpy failed, with the line number a user sees in an editor."""
    width = first = None
    for i, ln in enumerate(text.splitlines(), 1):
        tokens = ln.split()
        if not tokens:
            continue
        for t in tokens:
            try:
                float(t)
            except ValueError:
                return f"line {i}: {t[:40]!r} is not a number"
        if width is None:
            width, first = len(tokens), i
        elif len(tokens) != width:
            return f"line {i}: {len(tokens)} numbers, line {first} has {width}"
    return None


def integral(m: TextMatrix, where: str) -> np.ndarray:
    """A one-column text matrix of whole numbers (labels, ids) as int64; the first fraction is named."""
    a = m.values[:, 0]
    frac = a != np.round(a)
    if frac.any():
        i = int(np.argmax(frac))
        raise fail(where, f"{m.line(i)}: {a[i]!r} is not a whole number")
    big = np.abs(a) > 2**53
    if big.any():
        i = int(np.argmax(big))
        raise fail(where, f"{m.line(i)}: {a[i]!r} is too large for a label or an id")
    return a.astype(np.int64)
