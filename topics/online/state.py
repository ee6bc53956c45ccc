"""The online state between two reclusters: assigner + emerging detector + id and sequence counters.

`OnlineState.process` is the whole online step for one batch, on numpy arrays only:

1. assign every item to its nearest topic when the cosine clears the topic's threshold, else -1;
2. feed the outliers, in order, to the emerging detector; a candidate that is not a known topic
   becomes a provisional topic with a fresh id (never reused) and takes its founders; later outliers
   of the same batch that clear the new topic's threshold join it instead of feeding the detector;
3. fold the batch's members (founders excepted: they are the new topic's anchor) into the drift.

The result depends only on the run's topics and on the sequence of batches, which is what lets the
store rebuild the state by replaying the items assigned online, in order (see ``topics.online.pending``).
The state is saved as one ``.npz`` (arrays plus a JSON header), written atomically.
"""

from __future__ import annotations

import json
import zipfile
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.atomic import atomic_file
from topics.ids import OUTLIER, TopicId
from topics.online.assigner import DEFAULT_DRIFT_CAP, OnlineAssigner, unit_rows
from topics.online.emerging import Candidate, EmergingDetector, EmergingParams

STATE_VERSION = 1


class OnlineStateError(ValueError):
    """A saved online state cannot be used (missing, another version, or corrupt: `damaged`)."""

    def __init__(self, message: str, *, damaged: bool = False) -> None:
        super().__init__(message)
        self.damaged = damaged


@dataclass(frozen=True)
class EmergedTopic:
    """A provisional topic born online: its id, anchor centroid, threshold and founders."""

    topic_id: TopicId
    centroid: np.ndarray
    threshold: float
    members: tuple[str, ...]
    scores: np.ndarray  # founders' cosine to the centroid
    batch: int  # the batch (state.batches before it) in which it was born


@dataclass(frozen=True)
class BatchResult:
    """What one batch got: a topic (-1 = outlier) and score per item, and any topics born on the way.

    Founders of a new topic that arrived in earlier batches are listed only in ``emerged``: their
    stored assignment must be rewritten too.
    """

    ids: tuple[str, ...]
    topics: np.ndarray
    scores: np.ndarray
    emerged: tuple[EmergedTopic, ...]
    batch: int  # this batch's number since the run
    first_seq: int  # sequence number of the batch's first item since the run

    def assignments(self) -> dict[str, tuple[TopicId, float]]:
        """Every item to (re)write, founders of earlier batches included: id -> (topic, score)."""
        out = {i: (int(t), float(s)) for i, t, s in zip(self.ids, self.topics, self.scores, strict=True)}
        for topic in self.emerged:
            out.update(
                {m: (topic.topic_id, float(s)) for m, s in zip(topic.members, topic.scores, strict=True)}
            )
        return out


class OnlineState:
    """Everything the online assigner learned since run `run_id`; saved to and loaded from one file."""

    def __init__(
        self,
        assigner: OnlineAssigner,
        detector: EmergingDetector | None,
        *,
        run_id: int,
        next_topic_id: int,
        reserved_ids: Iterable[TopicId] = (),
    ) -> None:
        self.assigner = assigner
        self.detector = detector
        self.run_id = run_id
        self.next_topic_id = max(int(next_topic_id), max(assigner.topic_ids, default=-1) + 1)
        self._reserved = deque(sorted(int(t) for t in reserved_ids))
        self.seq = 0  # items processed since the run
        self.batches = 0
        self.emerged: list[EmergedTopic] = []

    @classmethod
    def from_topics(
        cls,
        centroids: Mapping[TopicId, np.ndarray],
        thresholds: Mapping[TopicId, float],
        sizes: Mapping[TopicId, int] | None = None,
        *,
        run_id: int,
        next_topic_id: int,
        emerging: EmergingParams | None = None,
        drift_cap: float = DEFAULT_DRIFT_CAP,
        dim: int | None = None,
        detect: bool = True,
        reserved_ids: Iterable[TopicId] = (),
    ) -> OnlineState:
        """A fresh state right after a run: anchors = the run's centroids, no drift, nothing pending."""
        assigner = OnlineAssigner(centroids, thresholds, sizes, drift_cap=drift_cap, dim=dim)
        detector = EmergingDetector(assigner.dim, emerging) if detect else None
        return cls(assigner, detector, run_id=run_id, next_topic_id=next_topic_id, reserved_ids=reserved_ids)

    # ---- the online step ----

    def process(self, ids: Sequence[str], vectors: np.ndarray) -> BatchResult:
        """Assign one batch, grow emerging topics from its outliers, then drift centroids."""
        x = unit_rows(vectors, self.assigner.dim)
        if len(ids) != x.shape[0]:
            raise ValueError(f"{len(ids)} ids for {x.shape[0]} vectors")
        topics, scores = self.assigner.assign(x)
        founders = np.zeros(len(ids), dtype=bool)
        born = self._grow(list(ids), x, topics, scores, founders)
        self.assigner.learn(x, np.where(founders, OUTLIER, topics))
        result = BatchResult(tuple(ids), topics, scores, tuple(born), self.batches, self.seq)
        self.seq += len(ids)
        self.batches += 1
        return result

    def _grow(
        self, ids: list[str], x: np.ndarray, topics: np.ndarray, scores: np.ndarray, founders: np.ndarray
    ) -> list[EmergedTopic]:
        outliers = np.flatnonzero(topics == OUTLIER)
        if self.detector is None or len(outliers) == 0:
            return []
        features = self.detector.reduce(x[outliers])
        rows = {item_id: row for row, item_id in enumerate(ids)}
        born: list[EmergedTopic] = []
        for row, feature in zip(outliers, features, strict=True):
            if born and self._join_newborn(born, x[row], row, topics, scores):
                continue
            candidate = self.detector.feed(ids[row], x[row], feature)
            topic = self._accept(candidate) if candidate is not None else None
            if topic is None:
                continue
            born.append(topic)
            for member, score in zip(topic.members, topic.scores, strict=True):
                if member in rows:
                    topics[rows[member]], scores[rows[member]] = topic.topic_id, score
                    founders[rows[member]] = True
        return born

    def _join_newborn(
        self, born: list[EmergedTopic], vector: np.ndarray, row: int, topics: np.ndarray, scores: np.ndarray
    ) -> bool:
        """An outlier after a birth in the same batch joins the newborn when it clears its threshold."""
        sims = np.array([float(vector @ t.centroid) for t in born])
        best = int(sims.argmax())
        if sims[best] < born[best].threshold:
            return False
        topics[row], scores[row] = born[best].topic_id, sims[best]
        return True

    def _accept(self, candidate: Candidate) -> EmergedTopic | None:
        """A candidate becomes a topic unless its centroid already clears a known topic's threshold."""
        known, _ = self.assigner.assign(candidate.centroid[None, :])
        if known[0] != OUTLIER:
            return None
        topic_id = self._take_id()
        claimed = self.detector.claim(candidate.centroid, candidate.threshold) if self.detector else []
        members = candidate.members + tuple(i for i, _ in claimed)
        scores = np.concatenate([candidate.scores, np.array([s for _, s in claimed], np.float32)])
        self.assigner.add_topic(topic_id, candidate.centroid, candidate.threshold, len(members))
        topic = EmergedTopic(topic_id, candidate.centroid, candidate.threshold, members, scores, self.batches)
        self.emerged.append(topic)
        return topic

    def _take_id(self) -> TopicId:
        """Reserved ids first (a replay reuses the ids it issued before), then the counter."""
        while self._reserved:
            topic_id = self._reserved.popleft()
            if topic_id not in self.assigner:
                break
        else:
            topic_id = self.next_topic_id
        self.next_topic_id = max(self.next_topic_id, topic_id + 1)
        return topic_id

    # ---- persistence ----

    def save(self, path: Path) -> None:
        """Write the state to `path` atomically (a crash leaves the previous file intact)."""
        header: dict[str, Any] = {
            "version": STATE_VERSION,
            "run_id": self.run_id,
            "next_topic_id": self.next_topic_id,
            "reserved": list(self._reserved),
            "seq": self.seq,
            "batches": self.batches,
            "emerged": [_emerged_header(t) for t in self.emerged],
        }
        arrays = {f"a_{k}": v for k, v in self.assigner.to_arrays().items()}
        if self.detector is not None:
            detector_meta, detector_arrays = self.detector.to_state()
            header["detector"] = detector_meta
            arrays.update({f"d_{k}": v for k, v in detector_arrays.items()})
        for n, topic in enumerate(self.emerged):
            arrays[f"e_{n}_centroid"], arrays[f"e_{n}_scores"] = topic.centroid, topic.scores
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        with atomic_file(path) as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: Path) -> OnlineState:
        """Read a state written by :meth:`save`; `OnlineStateError` says why one cannot be used."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            header = json.loads(arrays.pop("header").tobytes().decode())
            return cls._from_saved(header, arrays)
        except FileNotFoundError as exc:
            raise OnlineStateError(f"no online state at {path}") from exc
        except OnlineStateError:
            raise
        except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            raise OnlineStateError(f"online state {path} is unusable: {exc}", damaged=True) from exc

    @classmethod
    def _from_saved(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> OnlineState:
        if header.get("version") != STATE_VERSION:
            version = header.get("version")
            raise OnlineStateError(f"online state version {version}, this code reads {STATE_VERSION}")
        assigner = OnlineAssigner.from_arrays({k[2:]: v for k, v in arrays.items() if k.startswith("a_")})
        detector = None
        if "detector" in header:
            detector_arrays = {k[2:]: v for k, v in arrays.items() if k.startswith("d_")}
            detector = EmergingDetector.from_state(header["detector"], detector_arrays)
        state = cls(
            assigner, detector, run_id=int(header["run_id"]), next_topic_id=int(header["next_topic_id"])
        )
        state._reserved = deque(int(t) for t in header["reserved"])
        state.seq, state.batches = int(header["seq"]), int(header["batches"])
        state.emerged = [
            _emerged_from(h, arrays[f"e_{n}_centroid"], arrays[f"e_{n}_scores"])
            for n, h in enumerate(header["emerged"])
        ]
        return state


def _emerged_header(topic: EmergedTopic) -> dict[str, Any]:
    return {
        "topic_id": topic.topic_id,
        "threshold": topic.threshold,
        "members": list(topic.members),
        "batch": topic.batch,
    }


def _emerged_from(header: Mapping[str, Any], centroid: np.ndarray, scores: np.ndarray) -> EmergedTopic:
    return EmergedTopic(
        int(header["topic_id"]),
        np.asarray(centroid, np.float32),
        float(header["threshold"]),
        tuple(header["members"]),
        np.asarray(scores, np.float32),
        int(header["batch"]),
    )
