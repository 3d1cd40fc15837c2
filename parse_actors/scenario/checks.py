"""Checks that need the whole scenario (node and agent counts, files), run
after the schema accepted it and before any work starts."""

from __future__ import annotations

import codecs
import csv
import math
import os
import re
import stat
from pathlib import Path

from netem import ConfigError as NetemConfigError
from netem import check_network
from netem.limits import MAX_FILE_BYTES as NETEM_MAX_FILE_BYTES
from parse_actors import memory
from parse_actors.data import DataError
from parse_actors.errors import ScenarioError

from .errors import _fmt_value
from .schema import Scenario


def check_scenario(sc: Scenario, file: str | None = None) -> None:
    """Checks that need the whole scenario (sizes, files), before any work starts."""
    if sc.base_dir is not None and "\x00" in sc.base_dir:
        raise ScenarioError(file, "base_dir", "a directory name cannot contain a NUL character")
    base = Path(sc.base_dir or ".")
    n = sc.n_agents
    files = [(_join("network", k), v, True) for k, v in sc.network.file_fields()]
    if sc.data.path is not None:
        files.append(("data.path", sc.data.path, False))
    _check_files(files, base, file)
    try:
        check_network(sc.network, n_nodes=n, base_dir=base)
    except NetemConfigError as e:
        raise ScenarioError(file, _join("network", e.path), e.message) from None
    except _UNEXPECTED as e:  # a reader failing on a file it should have reported on
        where = [k for k, _, _ in files if k.startswith("network.")]
        raise ScenarioError(file, where[0] if len(where) == 1 else "network", _unexpected(e)) from None
    groups = [tuple(g.modalities) for g in sc.agents.groups]
    try:
        sc.data.check(groups=groups, n_agents=n, base_dir=base,
                      agent_modalities=[g.modalities for g in sc.agent_groups()])
    except DataError as e:
        raise data_error(file, e) from None
    except _UNEXPECTED as e:
        raise ScenarioError(file, "data.path" if sc.data.path is not None else "data", _unexpected(e)) from None
    if sc.engine.compute_time == "measured" and sc.protocol.mode != "sync":
        raise ScenarioError(file, "engine.compute_time", "measured compute time needs protocol.mode: sync")
    if sc.protocol.priority == "change" and (sc.protocol.mode != "sync" or sc.engine.compute_time == "measured"):
        raise ScenarioError(file, "protocol.priority", "'change' needs protocol.mode: sync and "
                            "engine.compute_time: cost (for now)")
    if sc.engine.compute_time == "measured" and sc.protocol.lossy():
        raise ScenarioError(file, "engine.compute_time", "measured compute time does not work with "
                            "protocol.compression yet (compressed messages are made after scheduling)")
    if sc.method == "harmony" and not any(len(g) > 1 for g in groups):
        raise ScenarioError(file, "method", "harmony needs at least one multimodal agent group, found none")
    for i, g in enumerate(sc.agents.groups):
        for m in g.archs:
            if m not in g.modalities:
                raise ScenarioError(file, f"agents.groups.{i}.archs.{m}",
                                    f"names a modality the group lacks (group has {', '.join(g.modalities)})")
    _check_arch_ranks(sc, file)
    _check_model_memory(sc, file)


def data_error(file: str | None, e: DataError) -> ScenarioError:
    """A DataError (key relative to `data:`) as the one-line error of scenario `file`."""
    return ScenarioError(file, _join("data", e.path), e.message)


def check_data_files(sc: Scenario, file: str | None = None) -> None:
    """Read the dataset's files as a run would (`parse-sim validate`): every check its
    reader makes at load (headers, NaN, labels, CRC), without running anything."""
    from parse_actors.data import verify_source

    try:
        verify_source(sc.data, sc.seed, Path(sc.base_dir or "."))
    except DataError as e:
        raise data_error(file, e) from None


def _encoders(sc: Scenario):
    """(group, modality, key that picks its architecture, architecture, input shape) of
    every encoder the agents build, where the data's shapes are known without building it."""
    shapes = sc.data.input_shapes()
    if shapes is None:
        return
    gained = {ev.modality for ev in sc.data.schedule if ev.action == "gain"}
    for i, g in enumerate(sc.agents.groups):
        for m in [*g.modalities, *sorted(gained - set(g.modalities))]:
            if m not in shapes:
                continue
            if m in g.archs:
                key, arch = f"agents.groups.{i}.archs.{m}", g.archs[m]
            elif m in sc.model.archs:
                key, arch = f"model.archs.{m}", sc.model.archs[m]
            else:
                key, arch = "model.default_arch", sc.model.default_arch
            yield g, m, key, arch, tuple(shapes[m])


def _check_arch_ranks(sc: Scenario, file: str | None) -> None:
    """Each encoder architecture accepts the rank of the data it will encode
    (an agent would otherwise fail when it is built)."""
    from parse_actors.agents.config import ARCH_RANKS

    for _, m, key, arch, shape in _encoders(sc):
        ranks = ARCH_RANKS[arch]
        if len(shape) not in ranks:
            raise ScenarioError(file, key, f"architecture {arch!r} takes inputs of rank "
                                f"{' or '.join(map(str, ranks))}, modality {m!r} has shape {shape}")


def _check_model_memory(sc: Scenario, file: str | None) -> None:
    """The agents' encoder weights (float32, every agent's at once: a lower bound on what
    the run holds) fit in memory: an input width or a layer width cannot ask for more."""
    from parse_actors.agents.config import encoder_weights

    model = sc.model
    total, worst = 0, None
    for g, m, key, arch, shape in _encoders(sc):
        out = min(model.width_of(m), sum(model.slice_widths().values()))  # the encoder's output, at least
        nbytes = 4 * g.count * encoder_weights(arch, shape, out, model)
        total += nbytes
        if worst is None or nbytes > worst[0]:
            worst = (nbytes, key, arch, m, shape, g.count)
    why = memory.over_limit(total, "holding the agents' encoder weights")
    if why:
        _, key, arch, m, shape, count = worst
        width_key = _ARCH_WIDTHS[arch]
        value = getattr(model, width_key)
        if max(value if isinstance(value, list) else [value]) > math.prod(shape):
            key = f"model.{width_key}"  # the layers, not the input, are what is large
        raise ScenarioError(file, key, f"{why}; most of it: {count} agents x encoder {arch!r} on modality {m!r} "
                                       f"of shape {shape} with {width_key} {value}")


_ARCH_WIDTHS = {"mlp": "mlp_hidden", "cnn": "cnn_channels", "conv1d": "conv1d_channels", "gru": "gru_hidden"}
"""The model key holding each encoder's layer widths."""


# Errors a semantic check of netem/ or data/ may leak on a hostile file instead
# of its own ConfigError/DataError; they still become one line naming the key.
_UNEXPECTED = (OSError, ValueError, RuntimeError, OverflowError, csv.Error)
_MAX_TRACE_BYTES = NETEM_MAX_FILE_BYTES  # netem's own bound on the files it reads (network.* keys)


def _unexpected(e: BaseException) -> str:
    return f"could not be checked: {type(e).__name__}: {e}"


def _join(section: str, path: str) -> str:
    """`section.path` with list indices written `.i` (data/ says `schedule[2]`)."""
    path = re.sub(r"\[(\d+)\]", r".\1", path or "").strip(".")
    return f"{section}.{path}" if path else section


def _check_files(files: list[tuple[str, str, bool]], base: Path, file: str | None) -> None:
    """Paths that cannot even be looked up, and text files that are not UTF-8.

    A missing file is left to netem/data, whose messages list the shipped names.
    """
    import errno

    for key, spec, text in files:
        if "\x00" in spec:
            raise ScenarioError(file, key, "a file name cannot contain a NUL character")
        try:
            p = Path(spec).expanduser()
        except RuntimeError:
            raise ScenarioError(file, key,
                                f"cannot expand {_fmt_value(spec)}: no such user or home directory") from None
        if not p.is_absolute():
            p = base / p
        try:
            st = p.stat()
        except ValueError as e:  # embedded NUL and the like
            raise ScenarioError(file, key, f"cannot use {_fmt_value(str(p))}: {e}") from None
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                continue
            raise ScenarioError(file, key, f"cannot use {_fmt_value(str(p))}: {e.strerror or e}") from None
        if not text:
            continue
        if stat.S_ISDIR(st.st_mode):
            raise ScenarioError(file, key, f"{p} is a directory, expected a file")
        if not stat.S_ISREG(st.st_mode):
            raise ScenarioError(file, key, f"{p} is not a regular file")
        real = os.path.realpath(p)
        if real.startswith(("/proc/", "/sys/")):
            raise ScenarioError(file, key, f"{real} is a kernel pseudo-file, not a trace file")
        if st.st_size > _MAX_TRACE_BYTES:
            raise ScenarioError(file, key, f"{p}: larger than {_MAX_TRACE_BYTES >> 20} MiB")
        try:
            with open(p, "rb") as fh:
                decoder = codecs.getincrementaldecoder("utf-8")()
                offset = 0
                while chunk := fh.read(1 << 20):
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError as e:
                        raise ScenarioError(file, key, f"{p}: not UTF-8 text (byte {offset + e.start})") from None
                    offset += len(chunk)
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ScenarioError(file, key, f"{p}: not UTF-8 text (it ends inside a character)") from None
        except OSError as e:
            raise ScenarioError(file, key, f"cannot read {p}: {e.strerror or e}") from None
