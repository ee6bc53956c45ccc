"""Curation: labels, hidden topics and merges a person pins, kept with the store and across reclusters.

Curation is a layer over the clustering, never a rewrite of it: items keep the topic the recluster (or
the online assigner) gave them, and every reader (`list`, `show`, `search`, `report`, `export`,
`trends`) applies the layer with :func:`curate`. So every verb has an exact undo that deletes what it
added: `label`/`unlabel`, `hide`/`unhide`, `merge`/`unmerge`.

Storage: one point of kind ``curation`` per run in the topics collection (``record_id("curation",
run)``, no vectors), so `backup` and `migrate` carry it. A verb rewrites the current run's point (one
upsert: atomic); if a recluster switched runs meanwhile, the verb is applied again to the new run.

Across reclusters (:func:`follow`, run by the recluster after matching, before its switch) each
curated id goes to its successor in the lineage:

- survived: stays; split: a label stays on the id that continues (else goes to the largest piece), a
  hidden topic's pieces are all hidden, a merge group takes every piece;
- merged: a label moves to the merged topic unless that one has its own; hidden follows only when
  every merged parent was hidden; a merge group takes the merged topic;
- vanished: the label stays on the vanished record (so `show ID` still says what it was).

Each such event on a curated topic leaves a note in the new run's record; `topics history` lists them.

Themes are curated the same way (``level="theme"``: ids `T3` on the command line), in their own record
per run (kind ``curation_theme``), followed along the themes' lineage.
"""

from __future__ import annotations

from topics.curation.follow import carry, follow
from topics.curation.layer import (
    KIND,
    KINDS,
    MAX_LABEL,
    Curation,
    curate,
    curated_topic,
    curation_of,
    load,
    notes,
    shown,
)
from topics.curation.verbs import Change, hide, merge, save, set_label, unhide, unmerge, unset_label, update

__all__ = [
    "KIND",
    "KINDS",
    "MAX_LABEL",
    "Change",
    "Curation",
    "carry",
    "curate",
    "curated_topic",
    "curation_of",
    "follow",
    "hide",
    "load",
    "merge",
    "notes",
    "save",
    "set_label",
    "shown",
    "unhide",
    "unmerge",
    "unset_label",
    "update",
]
