"""A small demo corpus made on the spot: six stories as images with sidecar captions, plus a 4CAT-style
manifest. Images are drawn (colour and shapes per story), captions are real English sentences, so the
sentence model's caption vectors carry real meaning even when CLIP weights are random."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

STORIES: dict[str, dict] = {
    "tractor-protest": {
        "colour": (170, 120, 40),
        "phrases": [
            "farmers drive their tractors into the capital to protest fuel taxes",
            "a long line of tractors blocks the motorway during the farmers protest",
            "farmers protest subsidy cuts with a tractor convoy outside parliament",
            "police watch as tractors fill the square at the farmers demonstration",
            "angry farmers spray manure in front of the ministry of agriculture",
        ],
        "tags": ["#farmers", "#tractorprotest", "#agriculture"],
    },
    "beach-sunset": {
        "colour": (240, 140, 60),
        "phrases": [
            "golden sunset over the beach with waves rolling in",
            "watching the sun go down from the sand dunes by the sea",
            "orange sky and calm ocean at the end of a summer day",
            "surfers paddle out as the sun sets over the bay",
            "a quiet evening on the beach, the sky turning pink",
        ],
        "tags": ["#sunset", "#beach", "#summer"],
    },
    "cats": {
        "colour": (120, 120, 130),
        "phrases": [
            "my cat fell asleep on the keyboard again",
            "the kitten is chasing a laser pointer across the kitchen",
            "our grumpy cat refuses to leave the cardboard box",
            "a fluffy cat stretches in the morning sun on the windowsill",
            "the cat knocked every glass off the table and looks proud",
        ],
        "tags": ["#cats", "#catsofinstagram", "#kitten"],
    },
    "football": {
        "colour": (40, 150, 60),
        "phrases": [
            "last minute goal wins the derby for the home team",
            "the striker scores a penalty in front of a packed stadium",
            "fans celebrate the championship title on the pitch",
            "the goalkeeper saves a free kick in the second half",
            "a red card changes the match after the referee checks the video",
        ],
        "tags": ["#football", "#soccer", "#matchday"],
    },
    "street-food": {
        "colour": (200, 50, 50),
        "phrases": [
            "spicy noodles from the night market street food stall",
            "grilled skewers and dumplings at the food truck festival",
            "the best tacos in town are served from this tiny street cart",
            "queueing for fresh falafel wraps at the street food market",
            "crispy fried chicken and bubble tea after work",
        ],
        "tags": ["#streetfood", "#foodie", "#nightmarket"],
    },
    "flood": {
        "colour": (60, 90, 160),
        "phrases": [
            "heavy rain floods the streets and cars are stuck in water",
            "the river burst its banks and the town centre is under water",
            "rescue boats evacuate families from flooded houses after the storm",
            "firefighters pump water out of basements after the flash flood",
            "the storm brought record rainfall and flooded the subway",
        ],
        "tags": ["#flood", "#storm", "#weather"],
    },
}


def _image(
    colour: tuple[int, int, int], rng: random.Random, size: tuple[int, int] = (320, 240)
) -> Image.Image:
    jitter = [max(0, min(255, c + rng.randint(-25, 25))) for c in colour]
    img = Image.new("RGB", size, tuple(jitter))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(3, 8)):
        x, y = rng.randint(0, size[0]), rng.randint(0, size[1])
        r = rng.randint(8, 60)
        shade = tuple(max(0, min(255, c + rng.randint(-80, 80))) for c in colour)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=shade)
    return img


def _caption(story: dict, rng: random.Random) -> str:
    words = rng.choice(story["phrases"])
    tags = " ".join(rng.sample(story["tags"], k=rng.randint(1, 2)))
    return f"{words} {tags}"


def make_demo_set(root: Path, *, per_story: int = 24, seed: int = 7) -> Path:
    """Write `root/inbox/<story>/*.jpg` with sidecar .txt captions and `root/posts.csv`; return root."""
    rng = random.Random(seed)
    inbox = root / "inbox"
    for name, story in STORIES.items():
        folder = inbox / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_story):
            stem = folder / f"{name}-{i:03d}"
            kind = "caption-only" if i % 12 == 11 else "image-only" if i % 12 == 10 else "pair"
            if kind != "caption-only":
                _image(story["colour"], rng).save(stem.with_suffix(".jpg"), quality=88)
            if kind != "image-only":
                stem.with_suffix(".txt").write_text(_caption(story, rng), encoding="utf-8")
    _write_manifest(root, rng)
    return root


def _write_manifest(root: Path, rng: random.Random) -> None:
    """A 4CAT-style export: id, body, image_file, timestamp, author (images beside the manifest)."""
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    with (root / "posts.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "body", "image_file", "timestamp", "author"])
        for n, story in enumerate(STORIES.values()):
            for i in range(4):
                post_id = f"7{n}{i:04d}"
                image = media / f"{post_id}.jpg"
                _image(story["colour"], rng).save(image, quality=85)
                stamp = f"2026-11-{10 + i:02d} 12:00:00"
                writer.writerow([post_id, _caption(story, rng), f"media/{image.name}", stamp, f"user{i}"])
    (root / "README.json").write_text(json.dumps({"stories": list(STORIES)}, indent=2))
