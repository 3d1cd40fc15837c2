"""Synthetic multimodal data with a known partial information decomposition.

Generalizes the synthetic datasets of Liang et al. (NeurIPS 2023, "Quantifying
& modeling multimodal interactions") from two to K >= 1 modalities, so that
the redundant, unique and synergistic information each modality carries about
the label is known by construction. Used to check that PARSE's red/uni/syn
slices carry what their names say, and as the quickstart's dataset.

Generative model
----------------
Modalities m_1..m_K (named by the config), C classes, n samples. The *task*
(every matrix below, and the class bias b) is drawn once from `task_seed`
(default: the run seed); the *samples* from the run seed.

Latent parts, each owned by (visible to) a set of modalities:

* redundant   z_R ~ N(0, I_{d_R}),   owned by all K modalities;
* unique      z_U,m ~ N(0, I_{d_U}), owned by m alone, one per modality;
* synergy     for every subset S of `synergy_order` (k) modalities, each
              m in S holds a code q_S,m ~ Uniform{0..C-1}, owned by m alone
              (only when K >= 2);
* nuisance    z_N,m ~ N(0, I_{d_N}), owned by m, never used by the label.

Label. Per-class scores (a C-vector)

    s = w_R A_R z_R  +  (w_U / sqrt K) sum_m A_U,m z_U,m
        + (w_S / sqrt T) sum_S  c * onehot((sum_{m in S} q_S,m) mod C)  +  b
    y = argmax_c s_c          (then, with prob. `label_noise`, a uniform class)

where A_* are random C x d matrices with rows centred over classes and scaled
so each term has unit variance per class, c = C / sqrt(C-1) does the same for
the one-hot term, T is the number of synergy terms (C(K, k)), and b is
calibrated on a fresh draw so classes are balanced (up to ~3%).
(w_R, w_U, w_S) is the *mix*: presets redundancy (1, 0, 0), uniqueness
(0, 1, 0), synergy (0, 0, 1), mixed (1, 1, 0.4); or `mix:` explicitly.
d_R = d_U = max(4, C - 1) by default (so every class can win the argmax).

Why each part carries what its name says: z_R is seen by every modality, so
what it says about y is redundant. z_U,m is seen by m only: unique. The
synergy code (sum_m q_S,m) mod C is independent of any k-1 of its q's (a
modular sum of independent uniforms; XOR when C = 2), so a modality set
lacking one member of S learns nothing from that term, while S together
determines it: synergy. Parts with weight 0 stay in the observations as
distractors, so every preset has the same features and differs only in the
label rule.

Observations. Modality m sees the concatenation v_m of the parts it owns
(Gaussian parts as they are; each code q as a row of a random C x d_S
codebook, N(0, 1) entries), and

    x_m = P_m v_m + noise * eps,    P_m ~ N(0, 1 / dim(v_m)) of shape dim_m x dim(v_m)

a fixed random projection per modality (unit variance per feature before
noise), reshaped to `shapes[m]` when given, float32.

Ground truth recorded in `info`: the mix, the parts and terms, class balance,
`oracle_accuracy`: for each modality set, a Monte Carlo estimate of the
Bayes accuracy of predicting y from the latents that set sees (noise-free
observations; observation noise only lowers what a model reaches), and
`oracle_by_information`: the same seeing every modality but only the
redundant part, only redundant + unique parts, or everything. Under
`synergy` every single modality's oracle is chance and the full set's is 1;
under `redundancy` every single modality's is 1; under `mixed` (C = 4) about
0.5 from the redundant part, 0.63 for one modality, 0.83 for both without
synergy and 1 with it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..seeding import rng as seeded_rng
from .types import ModalData

# `cfg` below is a parse_actors.data.datasets.synthetic.SyntheticConfig; that module
# imports this generator, so the type is named, not imported (no import circle).


@dataclass(frozen=True)
class Part:
    name: str
    owners: tuple[str, ...]
    dim: int
    kind: str  # "gauss" or "code"
    role: str  # "redundant", "unique", "synergy", "nuisance"


@dataclass
class Term:
    name: str
    role: str
    parts: tuple[str, ...]
    weight: float
    matrix: np.ndarray | None = None  # (C, d) for Gaussian terms


def _modset_key(mods) -> str:
    return "+".join(sorted(mods))


class PIDTask:
    """The fixed random task: parts, label function, projections."""

    def __init__(self, cfg: "SyntheticConfig", task_seed: int) -> None:
        self.cfg = cfg
        self.modalities = tuple(cfg.modalities)
        self.C = cfg.num_classes
        K = len(self.modalities)
        r = seeded_rng(task_seed, "data", "synthetic", "task")
        w = cfg.weights()
        self.mix = w
        d_red, d_uni = cfg.latent_dims()

        parts = [Part("red", self.modalities, d_red, "gauss", "redundant")]
        parts += [Part(f"uni:{m}", (m,), d_uni, "gauss", "unique") for m in self.modalities]
        subsets = list(itertools.combinations(self.modalities, cfg.synergy_order)) if K >= 2 else []
        for S in subsets:
            parts += [Part(f"code:{_modset_key(S)}:{m}", (m,), cfg.synergy_dim, "code", "synergy") for m in S]
        if cfg.nuisance_dim:
            parts += [Part(f"nuis:{m}", (m,), cfg.nuisance_dim, "gauss", "nuisance") for m in self.modalities]
        self.parts = {p.name: p for p in parts}

        def gauss_matrix(d: int) -> np.ndarray:
            a = r.standard_normal((self.C, d))
            a -= a.mean(axis=0, keepdims=True)
            return a / np.sqrt(np.mean(np.sum(a * a, axis=1)))

        terms = [Term("redundant", "redundant", ("red",), w["redundant"], gauss_matrix(d_red))]
        terms += [
            Term(f"unique:{m}", "unique", (f"uni:{m}",), w["unique"] / math.sqrt(K), gauss_matrix(d_uni))
            for m in self.modalities
        ]
        T = max(len(subsets), 1)
        terms += [
            Term(
                f"synergy:{_modset_key(S)}", "synergy",
                tuple(f"code:{_modset_key(S)}:{m}" for m in S), w["synergy"] / math.sqrt(T),
            )
            for S in subsets
        ]
        self.terms = terms
        self.onehot_scale = self.C / math.sqrt(self.C - 1)

        self.codebooks = {p.name: r.standard_normal((self.C, p.dim)) for p in parts if p.kind == "code"}
        self.projections = {}
        for m in self.modalities:
            d_in = sum(p.dim for p in self.visible_parts(m))
            self.projections[m] = r.standard_normal((d_in, cfg.dims()[m])) / math.sqrt(d_in)
        self.bias = np.zeros(self.C)
        self.class_balance = self._calibrate(seeded_rng(task_seed, "data", "synthetic", "calibration"))

    # ------------------------------------------------------------- sampling

    def visible_parts(self, m: str) -> list[Part]:
        return [p for p in self.parts.values() if m in p.owners]

    def sample_latents(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        out = {}
        for p in self.parts.values():
            if p.kind == "gauss":
                out[p.name] = rng.standard_normal((n, p.dim))
            else:
                out[p.name] = rng.integers(0, self.C, size=n)
        return out

    def scores(self, lat: dict[str, np.ndarray]) -> np.ndarray:
        n = len(next(iter(lat.values())))
        s = np.tile(self.bias, (n, 1))
        rows = np.arange(n)
        for t in self.terms:
            if t.weight == 0:
                continue
            if t.matrix is not None:
                s += t.weight * (lat[t.parts[0]] @ t.matrix.T)
            else:
                code = np.zeros(n, dtype=np.int64)
                for p in t.parts:
                    code += lat[p]
                s[rows, code % self.C] += t.weight * self.onehot_scale
        return s

    def labels(self, lat: dict[str, np.ndarray]) -> np.ndarray:
        return np.argmax(self.scores(lat), axis=1).astype(np.int64)

    def observe(self, lat: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        x = {}
        for m in self.modalities:
            blocks = []
            for p in self.visible_parts(m):
                blocks.append(lat[p.name] if p.kind == "gauss" else self.codebooks[p.name][lat[p.name]])
            v = np.concatenate(blocks, axis=1).astype(np.float32)
            xm = v @ self.projections[m].astype(np.float32)  # float32: ample, and far faster than float64 here
            if self.cfg.noise > 0:
                xm += np.float32(self.cfg.noise) * rng.standard_normal(xm.shape, dtype=np.float32)
            x[m] = xm.reshape((len(xm),) + self.cfg.shape_of(m))
        return x

    # ---------------------------------------------------------- ground truth

    def _calibrate(self, rng: np.random.Generator, n: int = 50_000, tol: float = 0.03) -> list[float]:
        """Shift the class bias until classes are balanced within `tol` (relative)."""
        lat = self.sample_latents(rng, n)
        base = self.scores(lat) - self.bias
        for _ in range(200):
            freq = np.bincount(np.argmax(base + self.bias, axis=1), minlength=self.C) / n
            if np.max(np.abs(freq * self.C - 1)) <= tol:
                break
            self.bias -= 0.3 * np.log(np.maximum(freq * self.C, 1e-3))
            self.bias -= self.bias.mean()
        return [float(f) for f in freq]

    def oracle_accuracy(self, modset, rng: np.random.Generator, n_eval: int = 1500, n_mc: int = 32) -> float:
        """Monte Carlo Bayes accuracy of predicting y from the latents `modset` sees."""
        seen = {p.name for p in self.parts.values() if set(p.owners) & set(modset)}
        return self.oracle_accuracy_parts(seen, rng, n_eval, n_mc)

    def oracle_accuracy_parts(self, seen, rng: np.random.Generator, n_eval: int = 1500, n_mc: int = 32) -> float:
        """Monte Carlo Bayes accuracy of predicting y from the latent parts named in `seen`
        (the others are resampled; the prediction is the most frequent label)."""
        lat = self.sample_latents(rng, n_eval)
        y = self.labels(lat)
        rep = {k: np.repeat(v, n_mc, axis=0) for k, v in lat.items()}
        fresh = self.sample_latents(rng, n_eval * n_mc)
        for k in rep:
            if k not in seen:
                rep[k] = fresh[k]
        ys = self.labels(rep).reshape(n_eval, n_mc)
        counts = np.zeros((n_eval, self.C), dtype=np.int64)
        np.add.at(counts, (np.repeat(np.arange(n_eval), n_mc), ys.ravel()), 1)
        acc = float(np.mean(np.argmax(counts, axis=1) == y))
        eps = self.cfg.label_noise
        return acc * (1 - eps) + eps / self.C

    def oracle_by_information(self, rng: np.random.Generator) -> dict[str, float]:
        """What each kind of information is worth, seeing every modality: accuracy
        from the redundant part alone, from redundant + unique parts (no
        synergy), and from everything."""
        red = {p.name for p in self.parts.values() if p.role == "redundant"}
        uni = {p.name for p in self.parts.values() if p.role == "unique"}
        return {
            "redundant": round(self.oracle_accuracy_parts(red, rng), 4),
            "redundant+unique": round(self.oracle_accuracy_parts(red | uni, rng), 4),
            "all": round(self.oracle_accuracy_parts(set(self.parts), rng), 4),
        }

    def oracle_table(self, rng: np.random.Generator) -> dict[str, float]:
        K = len(self.modalities)
        sizes = range(1, K + 1) if K <= 4 else (1, K)
        out = {}
        for k in sizes:
            for S in itertools.combinations(self.modalities, k):
                out[_modset_key(S)] = round(self.oracle_accuracy(S, rng), 4)
        return out

    def describe(self) -> dict:
        return {
            "mix": dict(self.mix),
            "parts": [
                {"name": p.name, "owners": list(p.owners), "dim": p.dim, "kind": p.kind, "role": p.role}
                for p in self.parts.values()
            ],
            "terms": [
                {"name": t.name, "role": t.role, "parts": list(t.parts), "weight": round(t.weight, 6)}
                for t in self.terms
            ],
            "class_balance": [round(f, 4) for f in self.class_balance],
        }


@dataclass
class SyntheticSample:
    data: ModalData
    latents: dict[str, np.ndarray]
    task: PIDTask
    info: dict


def generate(cfg: "SyntheticConfig", seed: int, n: int | None = None, oracle: bool = True) -> SyntheticSample:
    """Draw `n` (default cfg.n_samples) samples; deterministic in (cfg, seed)."""
    n = cfg.n_samples if n is None else n
    task_seed = seed if cfg.task_seed is None else cfg.task_seed
    task = PIDTask(cfg, task_seed)
    lat = task.sample_latents(seeded_rng(seed, "data", "synthetic", "latents"), n)
    x = task.observe(lat, seeded_rng(seed, "data", "synthetic", "noise"))
    y = task.labels(lat)
    if cfg.label_noise > 0:
        r = seeded_rng(seed, "data", "synthetic", "label_noise")
        flip = r.random(n) < cfg.label_noise
        y[flip] = r.integers(0, task.C, size=int(flip.sum()))
    info = {
        "preset": cfg.preset if cfg.mix is None else "custom",
        "task_seed": task_seed,
        "noise": cfg.noise,
        "label_noise": cfg.label_noise,
        "synergy_order": cfg.synergy_order,
        **task.describe(),
    }
    if oracle:
        r = seeded_rng(task_seed, "data", "synthetic", "oracle")
        info["oracle_accuracy"] = task.oracle_table(r)
        info["oracle_by_information"] = task.oracle_by_information(r)
    return SyntheticSample(ModalData(x, y), lat, task, info)


def generate_heldout(cfg: "SyntheticConfig", seed: int, n: int, oracle: bool = False) -> SyntheticSample:
    """`n` fresh samples of the same task as `generate(cfg, seed)`, with their latents.

    For audits of learned representations (parse_actors.audit): the task (every
    matrix, the class bias) is the run's, the samples come from their own seed
    streams, so they are none of the run's training or test samples and
    drawing them changes nothing `generate` returns.
    """
    task_seed = seed if cfg.task_seed is None else cfg.task_seed
    task = PIDTask(cfg, task_seed)
    lat = task.sample_latents(seeded_rng(seed, "data", "synthetic", "heldout", "latents"), n)
    x = task.observe(lat, seeded_rng(seed, "data", "synthetic", "heldout", "noise"))
    y = task.labels(lat)
    if cfg.label_noise > 0:
        r = seeded_rng(seed, "data", "synthetic", "heldout", "label_noise")
        flip = r.random(n) < cfg.label_noise
        y[flip] = r.integers(0, task.C, size=int(flip.sum()))
    info = {"task_seed": task_seed, **task.describe()}
    if oracle:
        r = seeded_rng(task_seed, "data", "synthetic", "oracle")
        info["oracle_accuracy"] = task.oracle_table(r)
        info["oracle_by_information"] = task.oracle_by_information(r)
    return SyntheticSample(ModalData(x, y), lat, task, info)
