"""Exemplars: typical, diverse, from the topic, picked from a bounded pool fed in batches."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.embed.base import l2_normalise
from topics.represent import Representation, Representer, RepresentOptions
from topics.represent.exemplars import ExemplarPicker, mmr, typicality

DIM = 32


def unit(rng: np.random.Generator, n: int = 1) -> np.ndarray:
    return l2_normalise(rng.normal(size=(n, DIM)))


def blob(rng: np.random.Generator, centre: np.ndarray, n: int, spread: float) -> np.ndarray:
    return l2_normalise(centre + spread * rng.normal(size=(n, DIM)))


def near_duplicate_topic(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A topic whose 20 most typical members are near copies of one image, plus 80 varied members.

    The geometry is CLIP-like: members sit at cosine ~0.9 to the centroid and ~0.8 to each other.
    """
    centre = unit(rng)[0]
    copies = blob(rng, blob(rng, centre, 1, 0.05)[0], 20, 0.003)
    varied = blob(rng, centre, 80, 0.08)
    vectors = np.vstack([copies, varied])
    ids = [f"copy-{i}" for i in range(20)] + [f"varied-{i}" for i in range(80)]
    return centre, vectors, ids


def test_mmr_without_diversity_is_plain_ranking() -> None:
    rng = np.random.default_rng(0)
    relevance = rng.random(30)
    assert mmr(relevance, unit(rng, 30), k=5, diversity=0.0) == list(np.argsort(-relevance)[:5])


def test_exemplars_are_diverse_not_near_copies() -> None:
    rng = np.random.default_rng(1)
    centre, vectors, ids = near_duplicate_topic(rng)
    scores = typicality(vectors, np.zeros(len(ids), dtype=int), {0: centre})
    assert all(i.startswith("copy") for i in np.array(ids)[np.argsort(-scores)[:9]])  # top-k: all copies

    picker = ExemplarPicker(k=9, diversity=0.3, pool_size=60)
    picker.add(np.zeros(len(ids), dtype=int), ids, scores, vectors)
    picked = picker.pick()[0]
    assert len(picked) == 9
    assert picked[0].item_id.startswith("copy")  # the most typical comes first
    assert sum(e.item_id.startswith("copy") for e in picked) <= 2
    chosen = l2_normalise(vectors[[ids.index(e.item_id) for e in picked]])
    off_diagonal = (chosen @ chosen.T)[~np.eye(9, dtype=bool)]
    assert off_diagonal.max() < 0.99


def test_exemplars_come_from_their_own_topic_and_outliers_are_ignored() -> None:
    rng = np.random.default_rng(2)
    centres = {t: unit(rng)[0] for t in range(4)}
    topic_ids = np.repeat([0, 1, 2, 3, -1], 50)
    vectors = np.vstack([blob(rng, centres[t], 50, 0.2) for t in range(4)] + [unit(rng, 50)])
    ids = [f"{t}:{i}" for i, t in enumerate(topic_ids)]
    picker = ExemplarPicker(k=9, pool_size=20)
    picker.add(topic_ids, ids, typicality(vectors, topic_ids, centres), vectors)
    picked = picker.pick()
    assert sorted(picked) == [0, 1, 2, 3]
    for topic, exemplars in picked.items():
        assert len(exemplars) == 9
        assert all(e.item_id.startswith(f"{topic}:") for e in exemplars)


def test_pool_stays_bounded_and_batch_order_does_not_matter() -> None:
    rng = np.random.default_rng(3)
    centre = unit(rng)[0]
    vectors = blob(rng, centre, 5000, 0.3)
    ids = [str(i) for i in range(5000)]
    topic_ids = np.zeros(5000, dtype=int)
    scores = typicality(vectors, topic_ids, {0: centre})

    whole = ExemplarPicker(pool_size=50)
    whole.add(topic_ids, ids, scores, vectors)
    streamed = ExemplarPicker(pool_size=50)
    for rows in np.array_split(rng.permutation(5000), 37):
        streamed.add(topic_ids[rows], [ids[i] for i in rows], scores[rows], vectors[rows])
        assert all(
            len(pool) < 2 * 50 for pool in streamed._pools.values()
        )  # bounded, whatever the topic size
    assert [e.item_id for e in streamed.pick()[0]] == [e.item_id for e in whole.pick()[0]]
    pool_ids = set(streamed._pools[0].compact().item_ids)
    assert pool_ids == {ids[i] for i in np.argsort(-scores)[:50]}  # exactly the 50 most typical


def test_small_topics_get_what_they_have() -> None:
    rng = np.random.default_rng(4)
    vectors = unit(rng, 3)
    picker = ExemplarPicker()
    picker.add(np.zeros(3, dtype=int), ["a", "b", "c"], np.array([0.9, 0.5, np.nan]), vectors)
    assert sorted(e.item_id for e in picker.pick()[0]) == ["a", "b"]


def test_pooled_gives_what_is_shown_for_each_topics_most_typical_members() -> None:
    rng = np.random.default_rng(5)
    vectors = unit(rng, 6)
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.6, np.nan])
    shown = ["tractor farm", "tractor", None, "least typical", "boat", "no score"]
    picker = ExemplarPicker(k=2, pool_size=2)
    picker.add(np.array([0, 0, 0, 0, 1, 1]), [str(i) for i in range(6)], scores, vectors, shown)
    pooled = picker.pooled()
    assert sorted(pooled[0]) == ["tractor", "tractor farm"] and pooled[1] == ["boat"]


@pytest.mark.parametrize(
    ("options", "message"), [({"diversity": 1.5}, "diversity"), ({"pool_size": 3}, "pool")]
)
def test_bad_settings_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExemplarPicker(**options)


def test_representer_images_for_image_topics_captions_for_caption_topics() -> None:
    rng = np.random.default_rng(5)
    centres = {0: unit(rng)[0], 1: unit(rng)[0]}
    n = 40
    image_vecs = np.vstack([blob(rng, centres[0], n, 0.2), np.zeros((n, DIM))])  # topic 1: no images
    text_vecs = np.vstack([np.zeros((n, DIM)), blob(rng, centres[1], n, 0.2)])  # topic 0: no captions
    captions = [None] * n + [f"harbour boat number {i}" for i in range(n)]
    topic_ids = np.repeat([0, 1], n)
    ids = [f"item-{i}" for i in range(2 * n)]
    cluster_vecs = np.where(image_vecs.any(axis=1, keepdims=True), image_vecs, text_vecs)

    representer = Representer(centres, RepresentOptions(tiles_dir=None))
    for rows in np.array_split(np.arange(2 * n), 4):
        representer.add_batch(
            topic_ids[rows],
            [ids[i] for i in rows],
            cluster_vecs[rows],
            image_vectors=image_vecs[rows],
            text_vectors=text_vecs[rows],
            captions=[captions[i] for i in rows],
            image_paths=[f"/photos/{i}.jpg" if i < n else None for i in rows],
        )
    result = representer.finish()
    assert len(result[0].exemplars) == 9 and not result[0].captions
    assert all(int(i.split("-")[1]) < n for i in result[0].exemplars)
    assert len(result[1].captions) == 9 and not result[1].exemplars
    assert all(c.startswith("harbour boat number") for c in result[1].captions)
    assert len(set(result[1].caption_items)) == 9
    assert "harbour" in result[1].label and "boat" in result[1].label
    assert result[0].label == "topic 0"  # no captions, no captioner, no embedder


def test_vectors_from_another_space_are_refused() -> None:
    with pytest.raises(ValueError, match="dim 8 but centroids 4"):
        Representer({0: np.ones(4)}).add_batch([0], ["a"], np.ones((1, 8)))
    with pytest.raises(ValueError, match="item_ids has 1 rows but topic_ids has 2"):
        Representer({0: np.ones(4)}).add_batch([0, 0], ["a"], np.ones((2, 4)))


def test_representation_round_trips_through_a_json_payload(tmp_path) -> None:
    import json

    original = Representation(
        topic_id=3,
        label="tractor, farm",
        words=(("tractor", 0.5), ("farm", 0.25)),
        keywords=(("field", 0.3),),
        exemplars=("a", "b"),
        captions=("red tractor",),
        caption_items=("a",),
        tile=str(tmp_path / "topic-3.jpg"),
        tile_fingerprint="abc",
    )
    payload = json.loads(json.dumps(original.to_payload()))
    assert payload["words"] == [["tractor", 0.5], ["farm", 0.25]]
    assert Representation.from_payload(payload | {"future_field": 1}) == original


def test_options_from_settings_put_files_under_the_data_dir(tmp_path) -> None:
    from types import SimpleNamespace

    from indexer.config import load_settings

    settings = load_settings(data_dir=tmp_path)
    options = RepresentOptions.from_settings(settings)
    assert options.tiles_dir == tmp_path / "tiles" and options.cache_dir == tmp_path / "cache"
    assert options.n_exemplars == 9 and options.diversity == 0.3 and options.captioner_model is None
    section = SimpleNamespace(n_words=5, stop_words=["rt", "via"], captioner_model=None, unknown=1)
    shaped = SimpleNamespace(data_dir=tmp_path, device="cpu", represent=section)
    options = RepresentOptions.from_settings(shaped)
    assert options.n_words == 5 and options.stop_words == ("rt", "via") and options.device == "cpu"
