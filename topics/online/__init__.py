"""Online updates between reclusters: assignment, bounded drift, emerging topics, persistence.

Pure core (numpy + river): :class:`OnlineAssigner`, :class:`EmergingDetector`, :class:`OnlineState`.
Store wiring: :func:`topics.online.pending.assign_pending` and :func:`topics.online.pending.rebuild_state`.
"""

from topics.ids import OUTLIER, TopicId
from topics.online.assigner import DEFAULT_DRIFT_CAP, OnlineAssigner, unit_rows
from topics.online.emerging import Candidate, EmergingDetector, EmergingParams
from topics.online.state import BatchResult, EmergedTopic, OnlineState, OnlineStateError

__all__ = [
    "DEFAULT_DRIFT_CAP",
    "OUTLIER",
    "BatchResult",
    "Candidate",
    "EmergedTopic",
    "EmergingDetector",
    "EmergingParams",
    "OnlineAssigner",
    "OnlineState",
    "OnlineStateError",
    "TopicId",
    "unit_rows",
]
