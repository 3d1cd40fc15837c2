"""Which code made a result: the source digest, run.json's `code`, a sweep worker that
refuses a cell when the package files changed under it, and the resume warning."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from parse_actors.provenance import recorded_source, source_changed, source_digest
from parse_actors.studies.pool import _worker
from parse_actors.studies.sweep import _other_source


def _package(root: Path) -> Path:
    pkg = root / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    return pkg


def test_digest_follows_every_python_file_and_nothing_else(tmp_path):
    pkg = _package(tmp_path)
    d0 = source_digest([pkg])
    assert len(d0) == 16 and source_digest([pkg]) == d0  # read afresh, same files: same digest
    (pkg / "notes.md").write_text("not code")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.py").write_text("stale")
    assert source_digest([pkg]) == d0
    (pkg / "sub" / "b.py").write_text("y = 3\n")  # one byte of one module
    d1 = source_digest([pkg])
    assert d1 != d0
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    assert source_digest([pkg]) == d0  # back to the same files: back to the same digest
    (pkg / "sub" / "b.py").rename(pkg / "sub" / "c.py")  # same bytes, another module
    assert source_digest([pkg]) != d0


def test_the_installed_packages_digest_is_that_of_parse_actors_and_netem():
    here = Path(__file__).resolve().parents[1]
    assert source_digest() == source_digest([here / "parse_actors", here / "netem"])


def test_a_worker_refuses_a_cell_when_the_source_changed(tmp_path):
    assert source_changed(None) is None and source_changed(source_digest()) is None
    why = source_changed("0" * 16)
    assert why.startswith("parse-sim's source here differs from the one this sweep started with "
                          "(digest 0000000000000000, here ")
    assert source_digest() in why
    # the check comes first: nothing is run, nothing is written
    status, value = _worker(None, "cell", str(tmp_path / "cell"), "inline", "new", source="0" * 16)
    assert (status, value) == ("error", why) and not (tmp_path / "cell").exists()


def _done(tmp_path: Path, name: str, source: str | None) -> SimpleNamespace:
    d = tmp_path / name
    d.mkdir()
    info = {"backend": "inline"} if source is None else {"backend": "inline", "code": {"source": source}}
    (d / "run.json").write_text(json.dumps(info))
    return SimpleNamespace(dir=d)


def test_a_resumed_sweep_warns_of_runs_another_source_made(tmp_path):
    now = source_digest()
    same, old, unrecorded = _done(tmp_path, "a", now), _done(tmp_path, "b", "f" * 16), _done(tmp_path, "c", None)
    assert recorded_source(same.dir) == now and recorded_source(unrecorded.dir) is None
    assert recorded_source(tmp_path / "missing") is None
    assert _other_source([same, unrecorded]) is None  # older runs without a record are not counted
    assert _other_source([same, old, unrecorded]) == (
        f"warning: 1 of the 3 finished runs were made by other parse-sim source ({'f' * 16}; today {now}): "
        "kept as they are; --force re-runs every run")


def test_a_cluster_node_refuses_a_cell_its_source_does_not_match(ray_instance, tmp_path):
    """The cluster's cell task checks too (a node on another checkout, or edited files),
    after saying where it started, so the driver knows which host refused."""
    import socket

    from parse_actors.studies.cluster import _Control, cell_task

    ray = ray_instance
    control = ray.remote(_Control).options(num_cpus=0).remote()
    task = ray.remote(cell_task).options(num_cpus=1, max_retries=0)
    status, value, files, when = ray.get(task.remote(None, "cell", "inline", "new", {}, control, 1, 0, "0" * 16),
                                         timeout=120)
    assert status == "error" and files == {} and when["ended"] >= when["started"]
    assert value == f"on {socket.gethostname()}: {source_changed('0' * 16)}"
    assert "cell" in ray.get(control.snapshot.remote(), timeout=30)
    ray.kill(control)
