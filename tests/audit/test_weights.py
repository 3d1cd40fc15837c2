"""final_weights.pt: inference state only, loadable without running code, bounded."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch

from parse_actors.agents import Agent, AgentSpec
from parse_actors.audit import NAME, load_final_weights, save_final_weights
from parse_actors.metrics.final_weights import load_inference_state
from parse_actors.data.types import ModalData

SHAPES = {"image": (6,), "audio": (5,)}


def _agent(seed: int) -> Agent:
    return Agent(AgentSpec(agent_id=0, modalities=("image", "audio")), input_shapes=SHAPES, num_classes=3,
                 model={"slice_width": 4, "backbone_width": 8, "fusion_hidden": 8}, method="parse", seed=seed)


def _data(n: int = 64) -> ModalData:
    r = np.random.default_rng(0)
    return ModalData({m: r.standard_normal((n, *s)).astype(np.float32) for m, s in SHAPES.items()},
                     r.integers(0, 3, n))


class _Log:
    def __init__(self):
        self.events = []

    def warning(self, event, **kw):
        self.events.append((event, kw))


def test_round_trip_gives_the_same_predictions(tmp_path):
    a = _agent(1)
    a.train_steps(_data(), 5, 16)
    p = save_final_weights(tmp_path, {0: a.state_dict()})
    assert p == tmp_path / NAME
    got = load_final_weights(tmp_path)
    assert set(got) == {0}
    assert set(got[0]) == {"method", "agent_id", "modalities", "input_shapes", "archs", "keys", "model"}
    b = _agent(2)  # other init: only the loaded weights can make it agree
    load_inference_state(b, got[0])
    x = {m: torch.from_numpy(v) for m, v in _data().x.items()}
    a.net.eval(), b.net.eval()
    with torch.no_grad():
        w = a.loss_cfg.logit_weights
        assert torch.equal(a.net(x).prediction(w), b.net(x).prediction(w))


def test_no_file_no_weights(tmp_path):
    assert load_final_weights(tmp_path) is None


def test_above_the_cap_nothing_is_written_and_the_reason_is_logged(tmp_path):
    log = _Log()
    assert save_final_weights(tmp_path, {0: _agent(1).state_dict()}, max_mb=1e-4, log=log) is None
    assert not (tmp_path / NAME).exists()
    assert log.events[0][0] == "final_weights_skipped" and log.events[0][1]["bytes"] > 100
    assert save_final_weights(tmp_path, {0: _agent(1).state_dict()}, max_mb=None) is not None


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_file_that_would_run_code_is_refused(tmp_path, capsys):
    buf = io.BytesIO()
    torch.save({"format": 1, "agents": {0: _Evil()}}, buf, pickle_module=pickle)
    (tmp_path / NAME).write_bytes(buf.getvalue())
    with pytest.raises(Exception):
        load_final_weights(tmp_path)
    assert "pwned" not in capsys.readouterr().out


def test_features_of_fission_and_monolithic_agents():
    from parse_actors.audit.features import agent_features

    x = _data(10).x
    rows = agent_features(_agent(1).net, x)
    assert sorted(rows) == ["backbone/audio", "backbone/image", "fusion/audio+image", "red/audio", "red/image",
                            "syn/audio", "syn/image", "uni/audio", "uni/image"]
    assert rows["red/image"].shape == (10, 4) and rows["fusion/audio+image"].shape == (10, 8)
    mono = Agent(AgentSpec(agent_id=0, modalities=("image", "audio")), input_shapes=SHAPES, num_classes=3,
                 model={"slice_width": 4, "backbone_width": 8}, method="dsgd_full", seed=1)
    assert sorted(agent_features(mono.net, x)) == ["backbone/audio", "backbone/image", "embedding"]
