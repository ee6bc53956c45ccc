"""Emerging topics: outliers feed river's DBSTREAM; a dense, coherent micro-cluster becomes a candidate topic.

Why DBSTREAM: its micro-clusters have a fixed radius (a cosine scale we can derive from the topics'
thresholds), their weights fade so a burst of noise is forgotten, and cleanup bounds their number.
CluStream keeps a fixed number of micro-clusters whatever the data, and DenStream wants an offline
initialisation buffer; both fit "what is dense right now?" less well.

River models take dict features and cost O(micro-clusters × dims) per point in pure Python, so
outliers are first reduced by a fixed random projection (orthonormal, scaled by sqrt(d/r) so
distances are preserved on average). A random projection is used rather than the last run's PCA on
purpose: a new story is by definition not in the run's main directions, and PCA would squash it
onto the noise.

DBSTREAM does not say which micro-cluster absorbed a point, so a thin subclass remembers the point's
nearest neighbour micro-cluster (or the one it created) and the detector keeps a bounded list of
member ids and full vectors per micro-cluster. When a micro-cluster holds ``min_size`` members and
at least ``min_size`` of them are within ``coherence`` cosine of their mean in the full space, they
are returned as a :class:`Candidate` and the list is cleared.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from river.cluster import DBSTREAM
from river.cluster.dbstream import DBSTREAMMicroCluster

from indexer.embed.base import l2_normalise
from topics.fit.geometry import leave_one_out_cosines
from topics.online.assigner import unit_rows

DBSTREAM_STATE_VERSION = 1
_THRESHOLD_QUANTILE = 0.02  # as the recluster's floors: 2% of founders may sit below the threshold


@dataclass(frozen=True)
class EmergingParams:
    """Knobs of emerging-topic detection; ``None`` derives a default from ``min_size``."""

    min_size: int = 25  # founders a new topic needs (the run's minimum topic size)
    coherence: float = 0.8  # cosine of each founder to the founders' mean (median topic threshold)
    dims: int = 16  # reduced dimension fed to DBSTREAM
    # DBSTREAM radius = radius_scale · sqrt(2 - 2·coherence), a founder's distance to the mean, with room
    # for the micro-cluster's leader lagging behind and for the projection's distortion (1.0 splits a
    # new topic over many micro-clusters and doubles the items it takes to flag it).
    radius_scale: float = 1.5
    cleanup_every: int | None = None  # outliers between DBSTREAM cleanups; None: max(100, 4·min_size)
    half_life: float | None = None  # outliers for a micro-cluster's weight to halve; None: cleanup_every
    max_members: int | None = None  # member ids kept per micro-cluster; None: 4·min_size
    seed: int = 0

    def __post_init__(self) -> None:
        if self.min_size < 2:
            raise ValueError(f"min_size must be >= 2, got {self.min_size}")
        if not -1.0 < self.coherence < 1.0:
            raise ValueError(f"coherence must be a cosine in (-1, 1), got {self.coherence}")
        if self.dims < 2:
            raise ValueError(f"dims must be >= 2, got {self.dims}")

    @property
    def radius(self) -> float:
        return self.radius_scale * math.sqrt(2.0 - 2.0 * self.coherence)

    @property
    def cleanup_interval(self) -> int:
        return self.cleanup_every or max(100, 4 * self.min_size)

    @property
    def fading(self) -> float:
        return 1.0 / (self.half_life or self.cleanup_interval)

    @property
    def member_cap(self) -> int:
        return self.max_members or 4 * self.min_size

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Candidate:
    """A dense, coherent group of outliers: the founders of a provisional topic."""

    members: tuple[str, ...]
    vectors: np.ndarray  # (m, d) founders' unit vectors
    centroid: np.ndarray  # (d,) unit mean of the founders
    scores: np.ndarray  # (m,) founders' cosine to the centroid
    threshold: float  # the cosine a later item needs to join


class _TracedDBSTREAM(DBSTREAM):
    """DBSTREAM that remembers the micro-cluster each learned point belongs to (its nearest neighbour)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.last_home: int = -1

    def _find_fixed_radius_nn(self, x: dict) -> dict:
        found = super()._find_fixed_radius_nn(x)
        if found:
            self.last_home = min(found, key=lambda i: self._distance(found[i].center, x))
        else:  # DBSTREAM creates a micro-cluster under exactly this key next
            self.last_home = (max(self._micro_clusters) + 1) if self._micro_clusters else 0
        return found


@dataclass
class _Members:
    """The bounded member list of one micro-cluster; `mc` guards against DBSTREAM reusing keys."""

    mc: DBSTREAMMicroCluster
    ids: deque[str]
    vectors: deque[np.ndarray] = field(default_factory=deque)


class EmergingDetector:
    """Feeds outliers to DBSTREAM and reports candidates for new topics."""

    def __init__(self, dim: int, params: EmergingParams | None = None) -> None:
        self.dim = dim
        self.params = params or EmergingParams()
        if self.params.dims > dim:
            raise ValueError(f"cannot reduce {dim}-d vectors to {self.params.dims} dims")
        self._projection = random_projection(dim, self.params.dims, self.params.seed)
        self._stream = self._new_stream()
        self._members: dict[int, _Members] = {}

    def _new_stream(self) -> _TracedDBSTREAM:
        p = self.params
        return _TracedDBSTREAM(
            clustering_threshold=p.radius,
            fading_factor=p.fading,
            cleanup_interval=p.cleanup_interval,
            intersection_factor=0.3,
            minimum_weight=1.0,
        )

    @property
    def n_micro_clusters(self) -> int:
        return len(self._stream.micro_clusters)

    @property
    def n_tracked(self) -> int:
        """Member ids held over all micro-clusters (bounded by micro-clusters × member cap)."""
        return sum(len(m.ids) for m in self._members.values())

    def reduce(self, vectors: np.ndarray) -> list[dict[int, float]]:
        """River feature dicts of the projected vectors (one conversion per batch, not per value)."""
        reduced = (unit_rows(vectors, self.dim) @ self._projection).astype(np.float64)
        return [dict(enumerate(row)) for row in reduced.tolist()]

    def feed(self, item_id: str, vector: np.ndarray, features: dict[int, float]) -> Candidate | None:
        """Learn one outlier; a candidate when its micro-cluster now qualifies as a topic."""
        self._stream.learn_one(features)
        home = self._stream.last_home
        if self._stream._time_stamp % self.params.cleanup_interval == 0:
            self._forget_cleaned()
        mc = self._stream.micro_clusters.get(home)
        if mc is None:
            return None
        members = self._members.get(home)
        if members is None or members.mc is not mc:
            cap = self.params.member_cap
            members = self._members[home] = _Members(mc, deque(maxlen=cap), deque(maxlen=cap))
        members.ids.append(item_id)
        members.vectors.append(np.asarray(vector, dtype=np.float32))
        if len(members.ids) < self.params.min_size:
            return None
        return self._promote(home, members)

    def _forget_cleaned(self) -> None:
        alive = self._stream.micro_clusters
        for key in [k for k, m in self._members.items() if alive.get(k) is not m.mc]:
            del self._members[key]

    def _promote(self, key: int, members: _Members) -> Candidate | None:
        p = self.params
        vectors = unit_rows(np.stack(members.vectors), self.dim)
        centre = l2_normalise(vectors.mean(axis=0))
        keep = vectors @ centre >= p.coherence
        if keep.sum() < p.min_size:
            return None
        ids = tuple(i for i, k in zip(members.ids, keep, strict=True) if k)
        founders = vectors[keep]
        centroid = l2_normalise(founders.mean(axis=0))
        scores = (founders @ centroid).astype(np.float32)
        unbiased = leave_one_out_cosines(founders)
        threshold = float(min(p.coherence, np.quantile(unbiased, _THRESHOLD_QUANTILE)))
        del self._members[key]
        return Candidate(ids, founders, centroid, scores, threshold)

    def claim(self, centroid: np.ndarray, threshold: float) -> list[tuple[str, float]]:
        """Take the tracked outliers of every micro-cluster that clear a new topic's threshold.

        Items of a new story that arrived before it was flagged but landed in another micro-cluster
        join it too, instead of waiting for the next recluster.
        """
        claimed: list[tuple[str, float]] = []
        for members in self._members.values():
            if not members.ids:
                continue
            scores = np.stack(members.vectors) @ centroid
            taken = scores >= threshold
            if not taken.any():
                continue
            claimed += [(i, float(s)) for i, s, t in zip(members.ids, scores, taken, strict=True) if t]
            kept = [(i, v) for i, v, t in zip(members.ids, members.vectors, taken, strict=True) if not t]
            members.ids.clear()
            members.vectors.clear()
            for item_id, vector in kept:
                members.ids.append(item_id)
                members.vectors.append(vector)
        return claimed

    # ---- persistence ----

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able state and arrays that let a new detector continue exactly here."""
        keys = sorted(self._members)
        ids = [list(self._members[k].ids) for k in keys]
        vectors = [np.stack(self._members[k].vectors) for k in keys if self._members[k].vectors]
        meta = {
            "params": self.params.as_dict(),
            "dim": self.dim,
            "stream": dbstream_state(self._stream),
            "members": [[k, member_ids] for k, member_ids in zip(keys, ids, strict=True)],
        }
        stacked = np.concatenate(vectors) if vectors else np.zeros((0, self.dim), np.float32)
        return meta, {"member_vectors": stacked.astype(np.float32), "projection": self._projection}

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> EmergingDetector:
        """The inverse of :meth:`to_state`."""
        out = cls(int(meta["dim"]), EmergingParams(**meta["params"]))
        if not np.array_equal(arrays["projection"], out._projection):
            raise ValueError("online state: the stored projection differs from the one its seed gives")
        load_dbstream_state(out._stream, meta["stream"])
        vectors, start = np.asarray(arrays["member_vectors"], np.float32), 0
        cap = out.params.member_cap
        for key, member_ids in meta["members"]:
            mc = out._stream.micro_clusters.get(int(key))
            if mc is None:
                raise ValueError(f"online state: members for unknown micro-cluster {key}")
            rows = vectors[start : start + len(member_ids)]
            start += len(member_ids)
            out._members[int(key)] = _Members(
                mc, deque(member_ids, maxlen=cap), deque(list(rows), maxlen=cap)
            )
        if start != len(vectors):
            raise ValueError("online state: member vectors do not match member ids")
        return out


def random_projection(dim: int, dims: int, seed: int) -> np.ndarray:
    """A fixed (dim, dims) matrix with orthonormal columns, scaled so norms are kept on average."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((dim, dims)))[0]
    return (basis * math.sqrt(dim / dims)).astype(np.float32)


def dbstream_state(stream: DBSTREAM) -> dict[str, Any]:
    """DBSTREAM's learned state as plain JSON values (river keeps it in private attributes, so
    pyproject.toml pins the river version and tests/unit/test_online.py checks the round trip)."""
    micro_clusters = [
        [k, list(mc.center.values()), mc.last_update, mc.weight] for k, mc in stream.micro_clusters.items()
    ]
    shared = [[i, j, value, stream.s_t[i][j]] for i, row in stream.s.items() for j, value in row.items()]
    return {
        "version": DBSTREAM_STATE_VERSION,
        "time_stamp": stream._time_stamp,
        "mcs": micro_clusters,
        "shared": shared,
    }


def load_dbstream_state(stream: DBSTREAM, state: dict[str, Any]) -> None:
    """Put a state written by :func:`dbstream_state` back into a fresh DBSTREAM."""
    if state.get("version") != DBSTREAM_STATE_VERSION:
        raise ValueError(f"online state: DBSTREAM state version {state.get('version')} is not supported")
    stream._time_stamp = int(state["time_stamp"])
    stream._micro_clusters = {
        int(k): DBSTREAMMicroCluster(x=dict(enumerate(center)), last_update=last, weight=weight)
        for k, center, last, weight in state["mcs"]
    }
    stream.s, stream.s_t = {}, {}
    for i, j, value, at in state["shared"]:
        stream.s.setdefault(int(i), {})[int(j)] = value
        stream.s_t.setdefault(int(i), {})[int(j)] = at
    stream.clustering_is_up_to_date = False
