"""Topic representations: what a person needs to see what a topic is at a glance.

The recluster job (and the online assigner, for emerging topics) computes them once and stores them
with the topic, so queries never recompute anything. One entry point::

    representer = Representer(centroids, RepresentOptions.from_settings(settings), embedder=clip)
    for batch in scrolled_items:                      # every item, outliers (-1) included
        representer.add_batch(topic_ids, item_ids, cluster_vectors,
                              image_vectors=..., text_vectors=..., captions=..., image_paths=...)
    representations = representer.finish()           # {topic_id: Representation}

`centroids` are the topics' centroids in the space the items were clustered in (`cluster_vectors`
are the items' vectors in that same space); typicality is the cosine between the two. Per-item
rows of zeros in `image_vectors` / `text_vectors` mean "this item has no image / no caption".
Memory is bounded by the number of topics, not items: each topic keeps a fixed pool of candidates,
sparse term counts and one running image-vector sum.
"""

from __future__ import annotations

from topics.represent.captioner import CaptionModelUnavailable, ImageCaptioner
from topics.represent.exemplars import Exemplar, ExemplarPicker, mmr, typicality
from topics.represent.keywords import Vocabulary
from topics.represent.representation import Representation, RepresentOptions
from topics.represent.representer import Representer
from topics.represent.tiles import build_tile, tile_fingerprint, tile_is_current
from topics.represent.words import WordCounter, label_from_words

__all__ = [
    "CaptionModelUnavailable",
    "Exemplar",
    "ExemplarPicker",
    "ImageCaptioner",
    "RepresentOptions",
    "Representation",
    "Representer",
    "Vocabulary",
    "WordCounter",
    "build_tile",
    "label_from_words",
    "mmr",
    "tile_fingerprint",
    "tile_is_current",
    "typicality",
]
