"""Tiles: a 3×3 letterboxed grid per topic, tolerant of bad files, rebuilt only when exemplars change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from indexer.embed.base import l2_normalise
from topics.represent import Representer, RepresentOptions
from topics.represent.tiles import BACKGROUND, build_tile, tile_fingerprint, tile_is_current

RED, BLUE = (220, 20, 20), (20, 20, 220)


def image_file(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> str:
    Image.new("RGB", size, colour).save(path)
    return str(path)


def close(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 30) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def test_grid_has_the_right_size_and_keeps_aspect_ratio(tmp_path: Path) -> None:
    wide = image_file(tmp_path / "wide.png", (400, 100), RED)  # 4:1
    tall = image_file(tmp_path / "tall.jpg", (50, 200), BLUE)  # 1:4, upscaled into its cell
    out = build_tile([wide, tall] * 5, tmp_path / "tile.jpg", cell=100)
    with Image.open(out) as tile:
        assert tile.format == "JPEG" and tile.size == (300, 300)
        rgb = tile.convert("RGB")
    # Cell (0, 0): the wide image spans the width, 25 px high, centred: bands above and below.
    assert close(rgb.getpixel((50, 50)), RED) and close(rgb.getpixel((5, 50)), RED)
    assert close(rgb.getpixel((50, 10)), BACKGROUND) and close(rgb.getpixel((50, 90)), BACKGROUND)
    # Cell (0, 1): the tall image spans the height, 25 px wide, centred.
    assert close(rgb.getpixel((150, 50)), BLUE) and close(rgb.getpixel((150, 95)), BLUE)
    assert close(rgb.getpixel((110, 50)), BACKGROUND) and close(rgb.getpixel((190, 50)), BACKGROUND)


def test_missing_broken_and_remote_images_become_blank_cells(tmp_path: Path) -> None:
    good = image_file(tmp_path / "good.png", (64, 64), RED)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    paths = [good, str(broken), str(tmp_path / "gone.jpg"), "https://example.com/x.jpg", None, str(tmp_path)]
    out = build_tile(paths, tmp_path / "tiles" / "t.jpg", cell=64)
    rgb = Image.open(out).convert("RGB")
    assert rgb.size == (192, 192)
    assert close(rgb.getpixel((32, 32)), RED)
    for col, row in [(1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (1, 2)]:
        assert close(rgb.getpixel((col * 64 + 32, row * 64 + 32)), BACKGROUND)
    assert [p.name for p in (tmp_path / "tiles").iterdir()] == ["t.jpg"]  # no temp file left


def test_fingerprint_decides_rebuilds(tmp_path: Path) -> None:
    paths = [image_file(tmp_path / f"{i}.png", (32, 32), RED) for i in range(9)]
    ids = [f"id-{i}" for i in range(9)]
    fingerprint = tile_fingerprint(ids, paths, cell=64, grid=3)
    out = tmp_path / "t.jpg"
    assert not tile_is_current(out, fingerprint)
    build_tile(paths, out, cell=64, fingerprint=fingerprint)
    assert tile_is_current(out, fingerprint)
    assert not tile_is_current(out, tile_fingerprint(ids[::-1], paths[::-1], cell=64, grid=3))
    assert not tile_is_current(out, tile_fingerprint(ids, paths, cell=128, grid=3))
    out.write_bytes(b"garbage")
    assert not tile_is_current(out, fingerprint)


def run_representer(tmp_path: Path, paths: list[str], order: np.ndarray) -> dict:
    rng = np.random.default_rng(0)
    centre = l2_normalise(rng.normal(size=16))
    vectors = l2_normalise(centre + 0.3 * rng.normal(size=(len(paths), 16)))
    representer = Representer({7: centre}, RepresentOptions(tiles_dir=tmp_path / "tiles", tile_cell=48))
    topic_ids = np.full(len(paths), 7)
    representer.add_batch(
        topic_ids[order],
        [f"id-{i}" for i in order],
        vectors[order],
        image_vectors=vectors[order],
        image_paths=[paths[i] for i in order],
    )
    return representer.finish()


def test_representer_builds_a_tile_once_and_again_when_exemplars_change(tmp_path: Path) -> None:
    paths = [image_file(tmp_path / f"{i}.png", (40, 30), (i * 10, 100, 100)) for i in range(20)]
    first = run_representer(tmp_path, paths, np.arange(20))[7]
    tile = Path(first.tile)
    assert tile == tmp_path / "tiles" / "topic-7.jpg"
    assert Image.open(tile).size == (144, 144)
    assert tile_is_current(tile, first.tile_fingerprint)
    inode = tile.stat().st_ino  # a rebuild replaces the file, so a new inode means it was rebuilt

    again = run_representer(tmp_path, paths, np.arange(20)[::-1])[7]  # same items, other order
    assert again.exemplars == first.exemplars
    assert tile.stat().st_ino == inode

    dropped = int(first.exemplars[0].removeprefix("id-"))
    changed = run_representer(tmp_path, paths, np.array([i for i in range(20) if i != dropped]))[7]
    assert changed.exemplars != first.exemplars
    assert changed.tile_fingerprint != first.tile_fingerprint
    assert tile.stat().st_ino != inode
    assert tile_is_current(tile, changed.tile_fingerprint)
