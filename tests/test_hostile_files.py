"""Hostile data files: `parse-sim validate` and a run's load say what is wrong, in one line.

Every dataset reader that reads files a user points `data.path` at (npz,
avmnist, cremad, uci_har) and the shipped assets (av_digits, watch_imu) read
through parse_actors.data.files. For each way a file can be wrong inside
(NaN, objects, a damaged zip, labels of the wrong type or range, lengths that
disagree, a header claiming more than the file holds, links out of the
folder, a FIFO, a folder that is not the format's) both `parse-sim validate`
and `parse-sim run` exit 2 with one line naming the scenario, `data.path`,
the file and the array or line. Files are built small in tmp_path. A
derandomized hypothesis test mutates the bytes of a valid npz: every mutant
is accepted or refused with one DataError line, within a memory bound.

Run tables, summaries and sweep manifests a report reads, final_weights.pt an
audit reads, and the sizes a scenario only declares (synthetic dimensions,
layer widths, `audit --samples`) are tested the same way further down.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parse_actors import memory
from parse_actors.cli import main
from parse_actors.data import DataConfig, DataError
from parse_actors.data.registry import build_source, cache_key

ROOT = Path(__file__).resolve().parents[1]
R = np.random.default_rng(0)


def _scenario(tmp_path: Path, data: str, mods=("image", "audio")) -> Path:
    f = tmp_path / "s.yaml"
    groups = ", ".join(f"{{modalities: [{m}], count: 2}}" for m in mods)
    f.write_text(f"agents: {{groups: [{groups}]}}\n"
                 f"data: {{{data}, partition: {{min_samples: 2, val_fraction: 0}}}}\n"
                 "protocol: {rounds: 1}\ntrain: {local_steps: 1, batch_size: 4}\n"
                 "output: {plots: false, slice_drop: 'off', gradient_conflict_every: 0}\n")
    return f


def one_line_exit_2(argv: list[str], capsys, scenario: Path, *needles: str) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, repr(err)
    assert err.startswith(f"{scenario}: data."), err
    for n in needles:
        assert n in err, (n, err)
    return err


def validate_and_run(tmp_path, capsys, scenario: Path, *needles: str) -> None:
    """Both `validate` and an inline run refuse it in one line (exit 2)."""
    one_line_exit_2(["validate", str(scenario)], capsys, scenario, *needles)
    one_line_exit_2(["run", str(scenario), "--backend", "inline", "--out", str(tmp_path / "run"), "-q"], capsys,
                    scenario, *needles)


# ---------------------------------------------------------------------------- npz


def good_arrays(n: int = 24) -> dict:
    return {"image": R.standard_normal((n, 3)).astype(np.float32), "audio": R.standard_normal((n, 2)),
            "y": np.arange(n) % 3}


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def write_npz(path: Path, members: dict[str, bytes], compress: bool = False) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for k, b in members.items():
            z.writestr(f"{k}.npy", b)
    return path


def _members(**over) -> dict[str, bytes]:
    arrays = good_arrays()
    out = {k: npy_bytes(v) for k, v in arrays.items()}
    out.update(over)
    return out


def _huge_header() -> bytes:
    raw = npy_bytes(np.zeros((24, 3), np.float32))
    return raw.replace(b"(24, 3)", b"(24, 3000000000000)")  # 1.5e13 floats claimed, 288 bytes held


def _crc_damaged(tmp: Path) -> Path:
    f = write_npz(tmp / "d.npz", _members())
    raw = bytearray(f.read_bytes())
    i = raw.index(b"image.npy") + len(b"image.npy") + 200  # inside image.npy's data
    raw[i] ^= 0xFF
    f.write_bytes(bytes(raw))
    return f


NPZ_CASES = {
    "NaN": (lambda t: write_npz(t / "d.npz", _members(image=npy_bytes(np.full((24, 3), np.nan, np.float32)))),
            ["array 'image'", "sample 0 holds NaN"]),
    "infinity at sample 5": (lambda t: write_npz(t / "d.npz", _members(
        audio=npy_bytes(np.where(np.arange(24)[:, None] == 5, np.inf, np.zeros((24, 2)))))),
        ["array 'audio'", "sample 5"]),
    "beyond float32": (lambda t: write_npz(t / "d.npz", _members(audio=npy_bytes(np.full((24, 2), 1e300)))),
                       ["array 'audio'", "float32"]),
    "object array": (lambda t: write_npz(t / "d.npz", _members(image=npy_bytes(np.array([object()] * 24)))),
                     ["array 'image'", "Python objects"]),
    "pickle with code": (lambda t: write_npz(t / "d.npz", _members(
        image=npy_bytes(np.array([os.system] * 24, dtype=object)))), ["array 'image'", "never"]),
    "bad CRC": (_crc_damaged, ["array 'image'", "CRC"]),
    "float labels": (lambda t: write_npz(t / "d.npz", _members(y=npy_bytes(np.arange(24) % 3 * 1.0))),
                     ["array 'y'", "integer labels", "float64"]),
    "labels 2-d": (lambda t: write_npz(t / "d.npz", _members(y=npy_bytes(np.zeros((24, 2), int)))),
                   ["array 'y'", "shape (24, 2)"]),
    "bool labels": (lambda t: write_npz(t / "d.npz", _members(y=npy_bytes(np.arange(24) % 2 == 0))),
                    ["array 'y'", "bool"]),
    "length mismatch": (lambda t: write_npz(t / "d.npz", _members(audio=npy_bytes(np.zeros((23, 2))))),
                        ["d.npz", "'audio' has 23 samples", "'y' has 24"]),
    "header claims a huge shape": (lambda t: write_npz(t / "d.npz", _members(image=_huge_header())),
                                   ["array 'image'", "header says", "TiB"]),
    "truncated member": (lambda t: write_npz(t / "d.npz", _members(image=npy_bytes(np.zeros((24, 3)))[:-8])),
                         ["array 'image'", "truncated"]),
    "missing label key": (lambda t: write_npz(t / "d.npz", {k: v for k, v in _members().items() if k != "y"}),
                          ["data.npz.label_key", "no array 'y'"]),
    "not a zip": (lambda t: (t / "d.npz").write_bytes(b"PK\x03\x04 not really") and t / "d.npz",
                  ["d.npz", "not a readable .npz"]),
    "truncated archive": (lambda t: (t / "d.npz").write_bytes(write_npz(t / "x.npz", _members()).read_bytes()[:900])
                          and t / "d.npz", ["d.npz"]),
    "structured dtype": (lambda t: write_npz(t / "d.npz", _members(
        image=npy_bytes(np.zeros(24, dtype=[("a", "f4"), ("b", "f4")])))), ["array 'image'", "structured"]),
    "complex numbers": (lambda t: write_npz(t / "d.npz", _members(image=npy_bytes(np.zeros((24, 3), complex)))),
                        ["array 'image'", "complex"]),
    "text array": (lambda t: write_npz(t / "d.npz", _members(image=npy_bytes(np.array(["a"] * 24)))),
                   ["array 'image'", "<U1"]),
    "not an npy member": (lambda t: write_npz(t / "d.npz", _members(image=b"\x93NUMPX garbage")),
                          ["array 'image'", "not a numpy .npy"]),
    "npy header too long": (lambda t: write_npz(t / "d.npz", _members(image=b"\x93NUMPY\x02\x00" + struct.pack(
        "<I", 2**31) + b"{")), ["array 'image'", "header of"]),
    "no samples": (lambda t: write_npz(t / "d.npz", {"image": npy_bytes(np.zeros((0, 3))),
                                                    "y": npy_bytes(np.zeros(0, int))}), ["array 'y'", "no samples"]),
}


@pytest.mark.parametrize("case", list(NPZ_CASES))
def test_npz_wrong_inside_validate_and_run_exit_2(case, tmp_path, capsys):
    make, needles = NPZ_CASES[case]
    f = make(tmp_path)
    sc = _scenario(tmp_path, f"name: npz, path: {f.name}", ("image",) if case == "no samples" else ("image", "audio"))
    validate_and_run(tmp_path, capsys, sc, *needles)


def test_npz_test_split_shape_and_groups(tmp_path, capsys):
    d = tmp_path / "ds"
    d.mkdir()
    write_npz(d / "train.npz", _members(g=npy_bytes(np.arange(24) * 0.5)))
    write_npz(d / "test.npz", _members(image=npy_bytes(np.zeros((24, 4), np.float32))))
    sc = _scenario(tmp_path, "name: npz, path: ds, npz: {groups_key: g, modalities: [image, audio]}")
    one_line_exit_2(["validate", str(sc)], capsys, sc, "train.npz: array 'g'", "groups must be one integer")
    write_npz(d / "train.npz", _members())
    sc = _scenario(tmp_path, "name: npz, path: ds")
    one_line_exit_2(["validate", str(sc)], capsys, sc, "test.npz: array 'image'", "(4,)", "(3,)")


def test_npz_negative_labels_are_remapped_not_refused(tmp_path):
    """npz labels are any integers (remapped to 0..k-1, as documented), negative ones too."""
    f = write_npz(tmp_path / "d.npz", _members(y=npy_bytes(np.arange(24) % 3 - 1)))
    src = build_source(DataConfig.model_validate({"name": "npz", "path": str(f)}), 0)
    assert src.class_names == ["-1", "0", "1"] and sorted(set(src.train.y.tolist())) == [0, 1, 2]


def test_npz_header_checked_before_allocating(tmp_path, monkeypatch):
    """A consistent header (the file really holds the bytes) above the memory limit is
    refused from its header: nothing is read or allocated."""
    f = tmp_path / "d.npz"
    np.savez(f, image=np.zeros((4096, 64), np.float32), audio=np.zeros((4096, 2), np.float32), y=np.arange(4096) % 2)
    monkeypatch.setattr(memory, "machine_bytes", lambda: 2 << 20)  # a 2 MiB machine: 1 MiB for data
    reads = []
    real = np.lib.format.read_array
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: reads.append(1) or real(*a, **k))
    with pytest.raises(DataError) as e:
        build_source(DataConfig.model_validate({"name": "npz", "path": str(f)}), 0)
    assert "array 'image'" in e.value.message and "more than half of this machine's memory (2.0 MiB)" in e.value.message
    assert len(reads) <= 1  # the labels (32 KiB) at most, never the 1 MiB image


def test_npz_fifo_is_refused_without_blocking(tmp_path):
    """A FIFO named as the data file: refused at once (opening it for reading would wait for a writer)."""
    os.mkfifo(tmp_path / "d.npz")
    sc = _scenario(tmp_path, "name: npz, path: d.npz")
    proc = subprocess.run([sys.executable, "-m", "parse_actors.cli", "validate", str(sc)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "not a regular file" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_npz_link_out_of_the_folder_is_refused(tmp_path, capsys):
    outside = write_npz(tmp_path / "elsewhere.npz", _members())
    d = tmp_path / "ds"
    d.mkdir()
    (d / "train.npz").symlink_to(outside)
    sc = _scenario(tmp_path, "name: npz, path: ds")
    one_line_exit_2(["validate", str(sc)], capsys, sc, "train.npz", "outside the dataset folder")


# ---------------------------------------------------------------------------- avmnist


def write_avmnist(root: Path, n: int = 20, **over) -> Path:
    for sub in ("image", "audio"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        arrays = {"image": R.integers(0, 256, (n, 784)).astype(np.float64),
                  "audio": R.integers(0, 256, (n, 112, 112)).astype(np.uint8), "labels": np.arange(n) % 10}
        arrays.update({k[len(split) + 1:]: v for k, v in over.items() if k.startswith(split + "_")})
        for k, v in arrays.items():
            target = root / f"{split}_labels.npy" if k == "labels" else root / k / f"{split}_data.npy"
            target.write_bytes(v if isinstance(v, bytes) else npy_bytes(v))
    return root


AVMNIST_CASES = {
    "NaN in audio": ({"train_audio": np.where(np.arange(20)[:, None, None] == 7, np.nan,
                                              np.zeros((20, 112, 112), np.float32))},
                     ["audio/train_data.npy", "sample 7 holds NaN"]),
    "label 10": ({"test_labels": np.arange(20) % 11}, ["test_labels.npy", "sample 10: label 10", "0..9"]),
    "negative label": ({"train_labels": np.arange(20) % 10 - 1}, ["train_labels.npy", "sample 0: label -1"]),
    "float labels": ({"train_labels": np.arange(20) % 10 + 0.5}, ["train_labels.npy", "integer labels"]),
    "object labels": ({"train_labels": np.array([None] * 20)}, ["train_labels.npy", "Python objects"]),
    "huge header": ({"train_image": npy_bytes(np.zeros((20, 784))).replace(b"(20, 784)", b"(20000000, 784)")},
                    ["image/train_data.npy", "header says"]),
    "length mismatch": ({"train_audio": np.zeros((19, 112, 112), np.uint8)}, ["audio/train_data.npy has 19 samples"]),
}


@pytest.mark.parametrize("case", list(AVMNIST_CASES))
def test_avmnist_wrong_inside_exit_2(case, tmp_path, capsys):
    over, needles = AVMNIST_CASES[case]
    write_avmnist(tmp_path / "av", **over)
    validate_and_run(tmp_path, capsys, _scenario(tmp_path, "name: avmnist, path: av"), *needles)


def test_avmnist_missing_file_named(tmp_path, capsys):
    write_avmnist(tmp_path / "av")
    (tmp_path / "av" / "audio" / "test_data.npy").unlink()
    sc = _scenario(tmp_path, "name: avmnist, path: av")
    one_line_exit_2(["validate", str(sc)], capsys, sc, "audio/test_data.npy: missing")


# ---------------------------------------------------------------------------- uci_har


def write_har(root: Path, n: int = 24, T: int = 8, edit=None) -> Path:
    base = root / "UCI HAR Dataset"
    for split in ("train", "test"):
        d = base / split / "Inertial Signals"
        d.mkdir(parents=True)
        texts = {base / split / f"y_{split}.txt": "\n".join(str(i % 6 + 1) for i in range(n)),
                 base / split / f"subject_{split}.txt": "\n".join(str(i % 4 + 1) for i in range(n))}
        for sig in ("body_acc", "total_acc", "body_gyro"):
            for ax in "xyz":
                rows = R.standard_normal((n, T))
                texts[d / f"{sig}_{ax}_{split}.txt"] = "\n".join(" ".join(f"{v:.4e}" for v in r) for r in rows)
        for f, t in texts.items():
            f.write_text(t + "\n")
    if edit:
        edit(base)
    return root


def _edit_line(rel: str, line: int, text: str):
    def edit(base: Path):
        f = base / rel
        lines = f.read_text().splitlines()
        lines[line - 1] = text
        f.write_text("\n".join(lines) + "\n")
    return edit


def _link_out(f: Path, outside: Path) -> None:
    """`f` moved out of the dataset folder, a link left in its place."""
    f.rename(outside)
    f.symlink_to(outside)


HAR_CASES = {
    "label 7": (_edit_line("train/y_train.txt", 3, "7"), ["y_train.txt", "line 3: label 7 is outside 1..6"]),
    "label 0": (_edit_line("test/y_test.txt", 2, "0"), ["y_test.txt", "line 2: label 0"]),
    "label 1.5": (_edit_line("train/y_train.txt", 4, "1.5"), ["y_train.txt", "line 4", "whole number"]),
    "word in a signal": (_edit_line("train/Inertial Signals/body_gyro_y_train.txt", 5, "1 2 abc 4 5 6 7 8"),
                         ["body_gyro_y_train.txt", "line 5: 'abc' is not a number"]),
    "nan in a signal": (_edit_line("test/Inertial Signals/body_acc_z_test.txt", 9, " ".join(["nan"] * 8)),
                        ["body_acc_z_test.txt", "line 9 holds NaN"]),
    "ragged signal": (_edit_line("train/Inertial Signals/body_acc_x_train.txt", 6, "1 2 3"),
                      ["body_acc_x_train.txt", "line 6: 3 numbers, line 1 has 8"]),
    "subject lines": (_edit_line("train/subject_train.txt", 1, "1 2"), ["subject_train.txt", "line 2: 1 numbers"]),
    "not UTF-8": (lambda b: (b / "train/y_train.txt").write_bytes(b"1\n\xff\xfe\n"), ["y_train.txt", "not UTF-8"]),
    "missing file": (lambda b: (b / "test/Inertial Signals/body_gyro_x_test.txt").unlink(),
                     ["body_gyro_x_test.txt: missing"]),
    "activity labels": (lambda b: (b / "activity_labels.txt").write_text("1 WALKING\nx y\n"),
                        ["activity_labels.txt", "line 2"]),
    "link out": (lambda b: _link_out(b / "train/y_train.txt", b.parent.parent / "y.txt"),
                 ["y_train.txt", "outside the dataset folder"]),
}


@pytest.mark.parametrize("case", list(HAR_CASES))
def test_uci_har_wrong_inside_exit_2(case, tmp_path, capsys):
    edit, needles = HAR_CASES[case]
    write_har(tmp_path / "har", edit=edit)
    validate_and_run(tmp_path, capsys, _scenario(tmp_path, "name: uci_har, path: har", ("acc", "gyro")), *needles)


def test_uci_har_root_of_the_filesystem_is_not_walked(tmp_path, capsys, monkeypatch):
    """`data.path: /` is one line saying what was expected there, not a walk of every file
    under / (which died on /proc): only the format's fixed names are looked at."""
    walked = []
    monkeypatch.setattr(Path, "rglob", lambda self, *a, **k: walked.append(self) or iter(()))
    monkeypatch.setattr(os, "walk", lambda *a, **k: walked.append(a) or iter(()))
    sc = _scenario(tmp_path, "name: uci_har, path: /", ("acc", "gyro"))
    validate_and_run(tmp_path, capsys, sc, "data.path: / is not a UCI HAR Dataset folder", "expected train/")
    assert not walked
    with pytest.raises(DataError, match="not a UCI HAR"):
        cache_key(DataConfig.model_validate({"name": "uci_har", "path": "/"}), 0)


def test_uci_har_cache_key_reads_only_the_format_files(tmp_path):
    """Files beside the dataset (notes, other downloads) neither key the cache nor are read."""
    write_har(tmp_path / "har")
    cfg = DataConfig.model_validate({"name": "uci_har", "path": str(tmp_path / "har")})
    k1 = cache_key(cfg, 0)
    (tmp_path / "har" / "notes.txt").write_text("mine")
    os.mkfifo(tmp_path / "har" / "UCI HAR Dataset" / "pipe")
    assert cache_key(cfg, 0) == k1
    y = tmp_path / "har" / "UCI HAR Dataset" / "train" / "y_train.txt"
    y.write_text(y.read_text() + "1\n")
    assert cache_key(cfg, 0) != k1


# ---------------------------------------------------------------------------- cremad


def write_cremad(root: Path, bad=None) -> Path:
    for sub in ("audio", "visual"):
        (root / sub).mkdir(parents=True)
    for s in range(2):
        for emo in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD"):
            cid = f"{1001 + s}_IEO_{emo}_HI"
            np.save(root / "audio" / f"{cid}.npy", R.standard_normal((5, 4)).astype(np.float32))
            np.save(root / "visual" / f"{cid}.npy", R.standard_normal(6).astype(np.float32))
    if bad:
        bad(root)
    return root


CREMAD_CASES = {
    "NaN clip": (lambda r: np.save(r / "audio" / "1002_IEO_SAD_HI.npy", np.full((5, 4), np.nan, np.float32)),
                 ["audio/1002_IEO_SAD_HI.npy", "NaN"]),
    "object clip": (lambda r: (r / "visual" / "1001_IEO_ANG_HI.npy").write_bytes(npy_bytes(np.array([None] * 6))),
                    ["visual/1001_IEO_ANG_HI.npy", "Python objects"]),
    "truncated clip": (lambda r: (r / "audio" / "1001_IEO_HAP_HI.npy").write_bytes(
        (r / "audio" / "1001_IEO_HAP_HI.npy").read_bytes()[:-4]), ["audio/1001_IEO_HAP_HI.npy", "truncated"]),
    "clip linked out": (lambda r: (r / "audio" / "1001_IEO_NEU_HI.npy").unlink()
                        or (r / "audio" / "1001_IEO_NEU_HI.npy").symlink_to("/dev/zero"),
                        ["1001_IEO_NEU_HI.npy", "outside the dataset folder"]),
}


@pytest.mark.parametrize("case", list(CREMAD_CASES))
def test_cremad_wrong_inside_exit_2(case, tmp_path, capsys):
    bad, needles = CREMAD_CASES[case]
    write_cremad(tmp_path / "cd", bad)
    validate_and_run(tmp_path, capsys, _scenario(tmp_path, "name: cremad, path: cd", ("audio", "visual")), *needles)


def test_cremad_sub_folder_outside_is_refused(tmp_path, capsys):
    write_cremad(tmp_path / "cd")
    (tmp_path / "other").mkdir()
    sc = _scenario(tmp_path, "name: cremad, path: cd, cremad: {modalities: {audio: audio, visual: ../other}}",
                   ("audio", "visual"))
    one_line_exit_2(["validate", str(sc)], capsys, sc, "outside the dataset folder")


# ---------------------------------------------------------------------------- shipped assets


@pytest.mark.parametrize("name, groups", [("av_digits", ("image", "audio")), ("watch_imu", ("acc", "gyro"))])
def test_damaged_shipped_asset_is_one_line(name, groups, tmp_path, monkeypatch):
    from parse_actors.data import assets

    damaged = bytearray((assets.ASSETS / f"{name}.npz").read_bytes())
    damaged[len(damaged) // 3] ^= 0xFF
    (tmp_path / f"{name}.npz").write_bytes(bytes(damaged))
    monkeypatch.setattr(assets, "ASSETS", tmp_path)
    assets.load_asset.cache_clear()
    try:
        with pytest.raises(DataError) as e:
            build_source(DataConfig.model_validate({"name": name, "cache": False}), 0)
    finally:
        assets.load_asset.cache_clear()
    assert e.value.path == "name" and f"{name}.npz" in e.value.message and "rebuild it with" in e.value.message
    assert len(str(e.value).splitlines()) == 1


# ---------------------------------------------------------------------------- fuzz: mutated npz bytes

FUZZ = settings(derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck),
                print_blob=False)
SEED_NPZ = {}


def _seed_archive(compressed: bool) -> bytes:
    if compressed not in SEED_NPZ:
        buf = io.BytesIO()
        (np.savez_compressed if compressed else np.savez)(buf, **good_arrays(12))
        SEED_NPZ[compressed] = buf.getvalue()
    return SEED_NPZ[compressed]


@st.composite
def mutated_npz(draw):
    raw = bytearray(_seed_archive(draw(st.booleans())))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "byte", "truncate", "insert", "delete", "header", "size"]))
        pos = draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            raw[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del raw[pos:]
        elif op == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del raw[pos:pos + draw(st.integers(1, 16))]
        elif op == "header":  # rewrite a shape or dtype inside an .npy header
            i = raw.find(b"'shape': (", draw(st.integers(0, max(0, len(raw) - 1))))
            if i >= 0:
                text = draw(st.sampled_from([b"(99999999999, 3)", b"(-1, 3)", b"(12, 3, 0)", b"(12,)", b"()",
                                             b"(1e3,)", b"(12, 'a')", b"[12, 3]"]))
                end = raw.find(b")", i + 10)
                raw[i + 9:end + 1] = text
            j = raw.find(b"'descr': '", draw(st.integers(0, max(0, len(raw) - 1))))
            if j >= 0 and draw(st.booleans()):
                end = raw.find(b"'", j + 10)
                raw[j + 9:end + 1] = draw(st.sampled_from([b"'|O'", b"'<c16'", b"'<U3'", b"[('a', '<f4')]",
                                                           b"'<f2'", b"'>i8'", b"'V8'"]))
        elif op == "size":  # a zip size field (local header or central directory) set to a lie
            k = raw.find(draw(st.sampled_from([b"PK\x03\x04", b"PK\x01\x02"])), pos)
            if k >= 0:
                off = k + (22 if raw[k + 2] == 3 else 24)
                raw[off:off + 4] = struct.pack("<I", draw(st.sampled_from([0, 1, 2**31, 2**32 - 1, 10**9])))
        if not raw:
            break
    return bytes(raw)


CASES = {"fuzz": 0, "accepted": 0, "refused": 0}
MAX_GROWTH_KIB = 200 * 1024  # a mutant of a 2 KiB file may not make the process allocate more


def _peak_kib() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _rss_kib() -> int:
    import resource

    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * (resource.getpagesize() // 1024)


@given(data=mutated_npz())
@settings(FUZZ, max_examples=300)
def _fuzz_npz(data, tmp_path_factory):
    d = tmp_path_factory.mktemp("z")
    f = d / "d.npz"
    f.write_bytes(data)
    CASES["fuzz"] += 1
    ceiling = max(_peak_kib(), _rss_kib() + MAX_GROWTH_KIB)  # the peak may grow only by what one case may use
    try:
        build_source(DataConfig.model_validate({"name": "npz", "path": str(f)}), 0)
        CASES["accepted"] += 1
    except DataError as e:
        CASES["refused"] += 1
        line = str(e)
        assert len(line.splitlines()) == 1 and e.path in ("path", "npz.label_key"), line
        assert str(f) in line or "d.npz" in line, line
    except BaseException as e:  # noqa: BLE001 - the property under test
        raise AssertionError(f"{type(e).__name__} escaped the npz reader: {e!r:.300}") from e
    finally:
        f.unlink()
    assert _peak_kib() <= ceiling, f"more than {MAX_GROWTH_KIB >> 10} MiB for a {len(data)}-byte file"


def test_mutated_npz_bytes_accepted_or_one_line(tmp_path_factory, monkeypatch):
    """Mutants of a valid npz (bit flips, truncation, forged shapes, dtypes and zip sizes): each
    is read or refused with one DataError line naming the file, never another exception. The
    memory limit is lowered to 256 MiB so a forged size that got past the checks would fail here."""
    monkeypatch.setattr(memory, "machine_bytes", lambda: 512 << 20)
    before = CASES["fuzz"]
    _fuzz_npz(tmp_path_factory=tmp_path_factory)
    assert CASES["fuzz"] - before >= 250, CASES
    assert CASES["refused"] > 100 and CASES["accepted"] > 5, CASES  # both outcomes really occur


def test_mutated_npz_through_the_cli(tmp_path, capsys):
    """A sample of the mutants through `parse-sim validate`: exit 0 or 2, one line, never 1."""
    seen = {0: 0, 2: 0}

    @given(data=mutated_npz())
    @settings(FUZZ, max_examples=25)
    def run(data):
        f = tmp_path / "d.npz"
        f.write_bytes(data)
        sc = _scenario(tmp_path, "name: npz, path: d.npz")
        rc = main(["validate", str(sc)])
        out = capsys.readouterr()
        assert rc in (0, 2), out.err
        seen[rc] += 1
        if rc == 2:
            assert out.err.count("\n") == 1 and "Traceback" not in out.err, out.err

    run()
    assert seen[2] > 10, seen


# ---------------------------------------------------------------------------- a real run to damage


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A small finished inline run: every table, summary.json and final_weights.pt."""
    d = tmp_path_factory.mktemp("run")
    sc = d / "tiny.yaml"
    sc.write_text("name: tiny\nseed: 1\nagents: {groups: [{modalities: [image], count: 1}, {modalities: [audio], "
                  "count: 1}, {modalities: [image, audio], count: 1}]}\n"
                  "data: {name: synthetic, cache: false, synthetic: {n_samples: 600, dim: 8}, "
                  "partition: {min_samples: 20}}\n"
                  "model: {slice_width: 4, backbone_width: 16, fusion_hidden: 16, mlp_hidden: [16]}\n"
                  "train: {local_steps: 1, batch_size: 16}\nprotocol: {rounds: 2}\n"
                  "output: {plots: false, slice_drop: final}\n")
    assert main(["run", str(sc), "--backend", "inline", "--out", str(d / "out"), "-q"]) == 0
    return d / "out"


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("report*", "pid_audit*"))
    return dst


def _edit_cell(name: str, line: int, column: str, value: str):
    def edit(d: Path):
        lines = (d / name).read_text().splitlines()
        header = lines[0].split(",")
        cells = lines[line - 1].split(",")
        cells[header.index(column)] = value
        lines[line - 1] = ",".join(cells)
        (d / name).write_text("\n".join(lines) + "\n")
    return edit


def _edit_summary(change):
    def edit(d: Path):
        import json

        s = json.loads((d / "summary.json").read_text())
        (d / "summary.json").write_text(json.dumps(change(s)))
    return edit


def _drop_column(name: str, column: str):
    def edit(d: Path):
        rows = [ln.split(",") for ln in (d / name).read_text().splitlines()]
        i = rows[0].index(column)
        (d / name).write_text("\n".join(",".join(r[:i] + r[i + 1:]) for r in rows) + "\n")
    return edit


REPORT_CASES = {
    "metrics: word for acc": (_edit_cell("metrics.csv", 3, "acc", "high"),
                              ["metrics.csv: line 3, column 'acc'", "expected a number", "'high'"]),
    "metrics: fractional round": (_edit_cell("metrics.csv", 2, "round", "1.5"),
                                  ["metrics.csv: line 2, column 'round'", "integer"]),
    "metrics: time nan": (_edit_cell("metrics.csv", 4, "t", "nan"), ["metrics.csv: line 4, column 't'", "finite"]),
    "metrics: empty group": (_edit_cell("metrics.csv", 2, "group", ""), ["metrics.csv: line 2, column 'group'"]),
    "metrics: missing column": (_drop_column("metrics.csv", "round"), ["metrics.csv: line 1: no column 'round'"]),
    "metrics: short row": (lambda d: (d / "metrics.csv").write_text((d / "metrics.csv").read_text() + "1,2\n"),
                           ["metrics.csv: line", "2 fields, the header has"]),
    "metrics: empty file": (lambda d: (d / "metrics.csv").write_text(""), ["metrics.csv: empty"]),
    "metrics: not UTF-8": (lambda d: (d / "metrics.csv").write_bytes(b"round,t\n\xff\xfe\n"),
                           ["metrics.csv: not UTF-8"]),
    "metrics: NUL": (_edit_cell("metrics.csv", 3, "agent", "0\x00"), ["metrics.csv: line 3, column 'agent'", "\\x00"]),
    "comm: negative bytes": (_edit_cell("comm.csv", 2, "bytes_sent", "-5"),
                             ["comm.csv: line 2, column 'bytes_sent'", "integer >= 0"]),
    "comm: missing column": (_drop_column("comm.csv", "kind"), ["comm.csv: line 1: no column 'kind'"]),
    "conflict: word": (_edit_cell("conflict.csv", 2, "cosine", "x"), ["conflict.csv: line 2, column 'cosine'"]),
    "slice_drop: empty acc": (_edit_cell("slice_drop.csv", 2, "acc", ""),
                              ["slice_drop.csv: line 2, column 'acc'", "empty"]),
    "summary: not JSON": (lambda d: (d / "summary.json").write_text("{"), ["summary.json: not valid JSON"]),
    "summary: empty": (lambda d: (d / "summary.json").write_text(""), ["summary.json: not valid JSON"]),
    "summary: a list": (_edit_summary(lambda s: [s]), ["summary.json: top level: expected an object"]),
    "summary: final_acc a list": (_edit_summary(lambda s: {**s, "final_acc": [1]}),
                                  ["summary.json: final_acc: expected an object, got a list"]),
    "summary: by_group text": (_edit_summary(lambda s: {**s, "final_acc": {"mean": 0.5, "by_group": {"image": "x"}}}),
                               ["summary.json: final_acc.by_group.image: expected a number"]),
    "summary: bytes text": (_edit_summary(lambda s: {**s, "bytes_by_kind": {"red": "lots"}}),
                            ["summary.json: bytes_by_kind.red: expected a number"]),
    "summary: conflict null": (_edit_summary(lambda s: {**s, "gradient_conflict": {"b": {"mean_cosine": None}}}),
                               ["summary.json: gradient_conflict.b.mean_cosine: expected a number, got null"]),
    "summary: rounds float": (_edit_summary(lambda s: {**s, "rounds": 2.5}), ["summary.json: rounds: expected an integer"]),
    "summary: deep": (lambda d: (d / "summary.json").write_text("[" * 100_000), ["summary.json"]),
    "metrics: a FIFO": (lambda d: (d / "metrics.csv").unlink() or os.mkfifo(d / "metrics.csv"),
                        ["metrics.csv: is not a regular file"]),
}


@pytest.mark.parametrize("case", list(REPORT_CASES))
def test_report_on_hand_edited_tables_exit_2(case, finished_run, tmp_path, capsys):
    edit, needles = REPORT_CASES[case]
    d = _copy_run(finished_run, tmp_path / "run")
    edit(d)
    rc = main(["report", str(d)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, repr(err)
    assert err.startswith(str(d)), err
    for n in needles:
        assert n in err, (n, err)
    assert not (d / "report.md").exists()


def test_report_accepts_what_parse_sim_writes_for_a_diverged_run(finished_run, tmp_path, capsys):
    """NaN accuracy (a diverged agent) and extra columns are valid, not hand edits."""
    d = _copy_run(finished_run, tmp_path / "run")
    _edit_cell("metrics.csv", 2, "acc", "nan")(d)
    _edit_summary(lambda s: {**s, "final_acc": {**s["final_acc"], "mean": float("nan")}})(d)
    lines = (d / "comm.csv").read_text().splitlines()
    (d / "comm.csv").write_text("\n".join([lines[0] + ",note"] + [ln + ",x" for ln in lines[1:]]) + "\n")
    assert main(["report", str(d)]) == 0, capsys.readouterr().err
    assert (d / "report.md").is_file()


def _sweep_of(run: Path, root: Path, **entry) -> Path:
    import json

    _copy_run(run, root / "r0")
    doc = {"kind": "parse-sim sweep", "scenario": "tiny.yaml", "name": "s", "grid": {"seed_only": [1]},
           "grid_text": {"seed_only": ["1"]}, "tune": [], "seeds": [1], "overrides": [],
           "runs": [{"dir": "r0", "params": {"seed_only": 1}, "seed": 1, "derived": {}, **entry}]}
    (root / "sweep.json").write_text(json.dumps(doc))
    return root


@pytest.mark.parametrize("entry, needle", [
    ({"dir": "../../etc"}, "sweep.json: runs[0].dir: expected a folder inside the sweep directory"),
    ({"dir": "/etc"}, "sweep.json: runs[0].dir"),
    ({"params": {"seed_only": 7}}, "sweep.json: runs[0].params.seed_only: 7 is not one of the grid's values"),
    ({"seed": "one"}, "sweep.json: runs[0].seed: expected an integer"),
    ({"derived": {"offline_frac": "x"}}, "sweep.json: runs[0].derived.offline_frac: expected a number"),
])
def test_report_on_a_hand_edited_sweep_exit_2(entry, needle, finished_run, tmp_path, capsys):
    root = _sweep_of(finished_run, tmp_path / "sw", **entry)
    assert main(["report", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err


def test_report_on_a_sweep_whose_run_was_hand_edited(finished_run, tmp_path, capsys):
    """A malformed run inside a sweep is named, not silently left out of the tables."""
    root = _sweep_of(finished_run, tmp_path / "sw")
    _edit_cell("metrics.csv", 2, "agent", "-1")(root / "r0")
    assert main(["report", str(root)]) == 2
    err = capsys.readouterr().err
    assert "r0/metrics.csv: line 2, column 'agent'" in err and err.count("\n") == 1, err
    # sweep.csv and tuned.csv are outputs the report never reads: garbage there changes nothing
    _copy_run(finished_run, root / "r1")
    import shutil

    shutil.rmtree(root / "r0")
    (root / "r1").rename(root / "r0")
    (root / "sweep.csv").write_bytes(b"\xff garbage,\x00\n")
    (root / "tuned.csv").write_text("")
    assert main(["report", str(root)]) == 0, capsys.readouterr().err


# ---------------------------------------------------------------------------- audit: final_weights.pt


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {Path(os.environ.get('TMPDIR', '/tmp')) / 'parse-sim-audit-pwned'}",))


def _weights_case(change):
    def edit(d: Path):
        import copy

        import torch

        doc = torch.load(d / "final_weights.pt", weights_only=True)
        torch.save(change(copy.deepcopy(doc)), d / "final_weights.pt")
    return edit


def _first_param(doc, a=0):
    return next(iter(doc["agents"][a]["model"]))


def _set(doc, path, value):
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return doc


AUDIT_CASES = {
    "truncated": (lambda d: (d / "final_weights.pt").write_bytes((d / "final_weights.pt").read_bytes()[:999]),
                  ["not a readable torch file, or truncated"]),
    "not a torch file": (lambda d: (d / "final_weights.pt").write_text("weights\n"),
                         ["weights-only loader accepts"]),
    "pickle that runs code": (lambda d: (d / "final_weights.pt").write_bytes(__import__("pickle").dumps(_RunsCode())),
                              ["weights-only loader accepts", "never code"]),
    "pickle protocol 2 that runs code": (lambda d: (d / "final_weights.pt").write_bytes(
        __import__("pickle").dumps(_RunsCode(), protocol=2)), ["weights-only loader accepts", "never code"]),
    "FIFO": (lambda d: (d / "final_weights.pt").unlink() or os.mkfifo(d / "final_weights.pt"),
             ["not a regular file"]),
    "wrong structure": (_weights_case(lambda doc: [doc]), ["not a final-weights file of format 1"]),
    "wrong format": (_weights_case(lambda doc: {**doc, "format": 2}), ["not a final-weights file of format 1"]),
    "agent id not a number": (_weights_case(lambda doc: {**doc, "agents": {"a": doc["agents"][0]}}),
                              ["agents: key 'a' is not an agent id"]),
    "missing agent": (_weights_case(lambda doc: {**doc, "agents": {k: v for k, v in doc["agents"].items() if k != 1}}),
                      ["agent 1 missing (the scenario has 3 agents)"]),
    "state is a list": (_weights_case(lambda doc: _set(doc, ["agents", 2], [1])),
                        ["agents.2: expected an agent's state (a dict), got list"]),
    "state lacks keys": (_weights_case(lambda doc: _set(doc, ["agents", 0], {"method": "parse"})),
                         ["agents.0: no 'agent_id'"]),
    "input shapes text": (_weights_case(lambda doc: _set(doc, ["agents", 0, "input_shapes"], "x")),
                          ["agents.0.input_shapes: expected {modality: shape}"]),
    "keys a number": (_weights_case(lambda doc: _set(doc, ["agents", 1, "keys"], 5)),
                      ["agents.1.keys: expected a list of names"]),
    "integer tensor": (_weights_case(lambda doc: _set(doc, ["agents", 0, "model", _first_param(doc)],
                                                      __import__("torch").zeros(3, dtype=__import__("torch").int64))),
                       ["expected a floating-point tensor, got torch.int64"]),
    "huge declared input": (_weights_case(lambda doc: _set(doc, ["agents", 0, "input_shapes", "image"], [10**9])),
                            ["agent 0 does not match the scenario", "(1000000000,)", "the data's is (8,)"]),
    "modality it lacks": (_weights_case(lambda doc: _set(doc, ["agents", 0, "modalities"], ["lidar"])),
                          ["agent 0 does not match", "'lidar'"]),
    "unknown architecture": (_weights_case(lambda doc: _set(doc, ["agents", 0, "archs"], {"image": "resnet"})),
                             ["agent 0 does not match", "'resnet'"]),
    "missing branch": (_weights_case(lambda doc: _set(doc, ["agents", 0, "keys"], doc["agents"][0]["keys"][1:])),
                       ["agent 0 does not match", "branches the weights lack"]),
    "wrong tensor shape": (_weights_case(lambda doc: _set(doc, ["agents", 0, "model", _first_param(doc)],
                                                          __import__("torch").zeros(3, 3))),
                           ["agent 0 does not match", "size mismatch"]),
}


@pytest.mark.parametrize("case", list(AUDIT_CASES))
def test_audit_on_malformed_final_weights_exit_2(case, finished_run, tmp_path, capsys):
    edit, needles = AUDIT_CASES[case]
    d = _copy_run(finished_run, tmp_path / "run")
    edit(d)
    rc = main(["audit", str(d), "-q", "--samples", "100"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, repr(err)
    assert err.startswith(f"{d / 'final_weights.pt'}: "), err
    for n in needles:
        assert n in err, (n, err)
    assert not (d / "pid_audit.csv").exists()
    assert not (Path(os.environ.get("TMPDIR", "/tmp")) / "parse-sim-audit-pwned").exists()


def test_audit_samples_bounded_before_allocating(finished_run, tmp_path, capsys, monkeypatch):
    """--samples (with --states) whose held-out set cannot fit is refused before anything is
    drawn, saying what it needs and what would fit."""
    from parse_actors.data import synthetic

    d = _copy_run(finished_run, tmp_path / "run")
    drawn = []
    monkeypatch.setattr(synthetic, "generate_heldout", lambda *a, **k: drawn.append(a) or 1 / 0)
    assert main(["audit", str(d), "-q", "--samples", str(10**12)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("--samples: auditing 1,000,000,000,000 samples needs ") and err.count("\n") == 1, err
    assert "more than half of this machine's memory" in err and "would fit" in err
    monkeypatch.setattr(memory, "machine_bytes", lambda: 64 << 20)  # a 64 MiB machine
    assert main(["audit", str(d), "-q", "--samples", "200000", "--states", "100000"]) == 2
    assert "--samples" in capsys.readouterr().err
    assert not drawn


def test_audit_data_file_gone_bad_is_the_scenario_line(tmp_path, capsys):
    """The audit rebuilds the run's data: a data file damaged since the run is one line
    naming the run's scenario.yaml and data.path."""
    import torch

    f = write_npz(tmp_path / "d.npz", _members())
    d = tmp_path / "run"
    d.mkdir()
    (d / "scenario.yaml").write_text(f"agents: {{groups: [{{modalities: [image, audio], count: 2}}]}}\n"
                                     f"data: {{name: npz, path: {f}, partition: {{min_samples: 2}}}}\n")
    torch.save({"format": 1, "agents": {}}, d / "final_weights.pt")
    (f.parent / "d.npz").write_bytes(write_npz(tmp_path / "x.npz", _members(
        image=npy_bytes(np.full((24, 3), np.nan, np.float32)))).read_bytes())
    assert main(["audit", str(d), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{d / 'scenario.yaml'}: data.path: {f}: array 'image'") and err.count("\n") == 1, err


# ---------------------------------------------------------------------------- declared sizes


@pytest.mark.parametrize("data, key, needle", [
    ("{synthetic: {dim: 1000000000000}}", "data.synthetic", "12,000 samples of 2,000,000,000,000 features"),
    ("{synthetic: {n_samples: 2, dim: {image: 4, audio: 100000000000}}}", "data.synthetic", "2 samples"),
    ("{synthetic: {redundant_dim: 100000000000}}", "data.synthetic", "latents 100000000000+"),
    ("{synthetic: {modalities: [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t, u, v, w, x, y, z, aa, "
     "ab, ac, ad, ae, af, ag, ah, ai, aj, ak, al, am, an], synergy_order: 20}}", "data.synthetic", "synergy terms"),
])
def test_declared_data_sizes_bounded_at_validation(data, key, needle, tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(f"agents: {{groups: [{{modalities: [image], count: 2}}]}}\ndata: {data}\n")
    if "modalities: [a," in data:
        f.write_text(f"agents: {{groups: [{{modalities: [a], count: 2}}]}}\ndata: {data}\n")
    assert main(["validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{f}: {key}: ") and needle in err and "more than half of this machine's memory" in err, err


@pytest.mark.parametrize("doc, key", [
    ("model: {mlp_hidden: [100000000000]}", "model.mlp_hidden"),
    ("model: {cnn_channels: [1000000, 1000000]}\nagents: {groups: [{modalities: [image], count: 2, "
     "archs: {image: cnn}}]}\ndata: {synthetic: {shapes: {image: [1, 8, 4]}}}", "model.cnn_channels"),
    ("data: {synthetic: {n_samples: 2, dim: 2000000000}}\nmodel: {mlp_hidden: [4]}", "data.synthetic"),
])
def test_declared_model_widths_bounded_at_validation(doc, key, tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(doc + "\n")
    assert main(["validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{f}: {key}: ") and "more than half of this machine's memory" in err, err


def test_encoder_weights_arithmetic_matches_the_built_encoders():
    """Validation sizes encoders without torch: the count must be the built encoder's own."""
    from parse_actors.agents.archs import build_encoder
    from parse_actors.agents.config import ModelConfig, encoder_weights

    cfg = ModelConfig(mlp_hidden=[7, 5], cnn_channels=[3, 4], conv1d_channels=[6], gru_hidden=9, conv1d_kernel=3)
    for arch, shape in [("mlp", (13,)), ("mlp", (2, 3, 4)), ("cnn", (3, 8, 8)), ("cnn", (8, 8)), ("conv1d", (10, 4)),
                        ("conv1d", (10,)), ("gru", (6, 5)), ("gru", (6,))]:
        built = sum(p.numel() for p in build_encoder(arch, shape, 11, cfg).parameters())
        assert encoder_weights(arch, shape, 11, cfg) == built, (arch, shape)


@pytest.mark.parametrize("kw", [
    {"n_samples": 3000, "dim": {"image": 40, "audio": 24}, "nuisance_dim": 3},
    {"n_samples": 2000, "dim": 2000},
    {"n_samples": 20000, "modalities": ["a", "b", "c", "d"], "dim": 16},
    {"n_samples": 2000, "num_classes": 50, "redundant_dim": 60},
    {"n_samples": 1000, "modalities": ["a", "b", "c", "d", "e", "f"], "synergy_order": 3, "dim": 8},
])
def test_synthetic_memory_bound_is_a_lower_bound(kw):
    """A refusal is only honest if the estimate never exceeds what generating really holds:
    below the peak numpy allocates (tracemalloc sees numpy's buffers), and not far below."""
    import tracemalloc

    from parse_actors.data.datasets.synthetic import SyntheticConfig
    from parse_actors.data.synthetic import generate

    cfg = SyntheticConfig(**kw)
    tracemalloc.start()
    try:
        generate(cfg, 0, oracle=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    est = cfg.memory_bytes(cfg.n_samples)
    assert 0.6 * peak <= est <= peak, (est, peak)
