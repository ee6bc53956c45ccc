"""ClipEmbedder on a tiny random open_clip model: shapes, norms, preprocessing, weights, failures."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from models.tiny import (
    TINY_CLIP_ARCH,
    TINY_CLIP_CONFIG,
    TINY_CLIP_DIM,
    TINY_CLIP_ENV,
    TINY_CLIP_IMAGE_SIZE,
    tiny_clip,
)
from PIL import Image

from indexer.config import load_settings
from indexer.embed import ImageEmbedder, ModelUnavailable, build_caption_embedder, build_clip
from indexer.embed import clip as clip_module
from indexer.embed.clip import ClipEmbedder, clip_model_id
from indexer.embed.device import resolve_precision
from indexer.embed.hub import DeadlineExceeded, call_with_deadline, hub_unreachable_reason


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """A tiny model gains nothing from threads, and on a busy shared CPU OpenMP's spinning makes each
    forward pass ~200x slower (0.2 s instead of 1 ms)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def embedder() -> ClipEmbedder:
    """fp32, so that tests of batching and trimming can ask for equal vectors (bf16: see below)."""
    return tiny_clip(precision="fp32")


def random_image(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB").convert(mode)


def assert_unit_rows(vectors: np.ndarray, rows: int) -> None:
    assert vectors.shape == (rows, TINY_CLIP_DIM)
    assert vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# ---- the protocol ------------------------------------------------------------------------------


def test_tiny_model_describes_itself(embedder: ClipEmbedder) -> None:
    assert isinstance(embedder, ImageEmbedder)
    assert embedder.dim == TINY_CLIP_DIM
    assert embedder.image_size == TINY_CLIP_IMAGE_SIZE
    assert embedder.context_length == 77
    assert embedder.modalities == frozenset({"image", "text"})
    assert embedder.model_id == f"open_clip:{TINY_CLIP_ARCH}/none"
    assert embedder.identity() == {
        "family": "open_clip",
        "arch": TINY_CLIP_ARCH,
        "pretrained": "none",
        "checkpoint": None,
        "checkpoint_bytes": None,
        "dim": TINY_CLIP_DIM,
        "random_weights": True,
    }


def test_images_and_texts_give_unit_float32_rows(embedder: ClipEmbedder) -> None:
    images = [random_image(40, 30, seed) for seed in range(3)]
    assert_unit_rows(embedder.embed_images(images), 3)
    assert_unit_rows(embedder.embed_texts(["a tractor", "a protest", "a tractor protest", "x"]), 4)


def test_empty_inputs_give_empty_matrices(embedder: ClipEmbedder) -> None:
    assert embedder.embed_images([]).shape == (0, TINY_CLIP_DIM)
    assert embedder.embed_texts([]).shape == (0, TINY_CLIP_DIM)
    assert embedder.embed_pixels(np.zeros((0, 3, 32, 32), np.float32)).shape == (0, TINY_CLIP_DIM)


def test_same_seed_same_weights_same_vectors() -> None:
    image = random_image(64, 48)
    first, second = tiny_clip(seed=3), tiny_clip(seed=3)
    np.testing.assert_array_equal(first.embed_images([image]), second.embed_images([image]))
    np.testing.assert_array_equal(first.embed_texts(["same"]), second.embed_texts(["same"]))
    other = tiny_clip(seed=4).embed_texts(["same"])
    assert not np.allclose(first.embed_texts(["same"]), other)


def test_a_text_only_model_embeds_texts_alike_and_refuses_images() -> None:
    full, texts = tiny_clip(seed=3), tiny_clip(seed=3, text_only=True)
    np.testing.assert_array_equal(full.embed_texts(["a tractor"]), texts.embed_texts(["a tractor"]))
    assert texts.modalities == frozenset({"text"}) and texts.model_id == full.model_id
    sizes = [sum(p.numel() for p in e._model.parameters()) for e in (texts, full)]
    assert sizes[0] < sizes[1]
    assert clip_model_id(full.identity()) == full.model_id  # what a store's identity names
    with pytest.raises(RuntimeError, match="texts only"):
        texts.embed_images([random_image(64, 48)])


def test_batches_equal_one_at_a_time(embedder: ClipEmbedder) -> None:
    images = [random_image(50 + seed, 37, seed) for seed in range(19)]  # 3 chunks of batch_size 8
    texts = [f"caption number {i} about tractors" for i in range(19)]
    batch_images, batch_texts = embedder.embed_images(images), embedder.embed_texts(texts)
    singles_images = np.vstack([embedder.embed_images([image]) for image in images])
    singles_texts = np.vstack([embedder.embed_texts([text]) for text in texts])
    np.testing.assert_allclose(batch_images, singles_images, atol=1e-5)
    np.testing.assert_allclose(batch_texts, singles_texts, atol=1e-5)


def test_embed_pixels_chunks_by_batch_size(embedder: ClipEmbedder) -> None:
    pixels = np.stack([embedder.preprocess(random_image(32, 32, seed)) for seed in range(20)])
    one_chunk = tiny_clip(batch_size=64, precision="fp32").embed_pixels(pixels)
    np.testing.assert_allclose(embedder.embed_pixels(pixels), one_chunk, atol=1e-5)


def test_embed_pixels_refuses_the_wrong_shape(embedder: ClipEmbedder) -> None:
    with pytest.raises(ValueError, match=r"\(n, 3, 32, 32\)"):
        embedder.embed_pixels(np.zeros((2, 3, 64, 64), np.float32))
    with pytest.raises(ValueError):
        embedder.embed_pixels(np.zeros((3, 32, 32), np.float32))


# ---- preprocessing -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (1, 300), (300, 1), (33, 17), (32, 32), (640, 480), (31, 45)])
def test_preprocess_matches_open_clips_own_transform(embedder: ClipEmbedder, size: tuple[int, int]) -> None:
    image = random_image(*size, seed=sum(size))
    ours = embedder.preprocess(image)
    reference = embedder._reference_transform(image).numpy()
    assert ours.shape == (3, TINY_CLIP_IMAGE_SIZE, TINY_CLIP_IMAGE_SIZE)
    assert ours.dtype == np.float32
    assert ours.flags.c_contiguous
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_other_resize_modes_fall_back_to_open_clips_transform() -> None:
    squashing = tiny_clip()
    squashing._preprocess_cfg["resize_mode"] = "squash"  # as a pretrained tag may ask
    squashing._init_transform()
    wide = random_image(120, 30)
    np.testing.assert_array_equal(squashing.preprocess(wide), squashing._reference_transform(wide).numpy())
    assert not np.allclose(squashing.preprocess(wide), tiny_clip().preprocess(wide), atol=1e-3)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "1", "I", "I;16", "F", "YCbCr"])
def test_preprocess_accepts_any_mode(embedder: ClipEmbedder, mode: str) -> None:
    image = random_image(45, 23).convert("L").convert(mode) if mode.startswith(("I", "F")) else None
    image = image or random_image(45, 23, mode=mode)
    pixels = embedder.preprocess(image)
    assert pixels.shape == (3, 32, 32)
    assert np.all(np.isfinite(pixels))


def test_sixteen_bit_images_use_their_range() -> None:
    ramp = (np.linspace(0, 4095, 64 * 64).reshape(64, 64)).astype(np.uint16)
    image = Image.fromarray(ramp)
    assert image.mode == "I;16"
    rgb = clip_module.to_rgb(image)
    values = np.asarray(rgb)
    assert values.min() == 0 and values.max() == 255  # stretched, not clipped to white


def test_transparent_pixels_become_white(embedder: ClipEmbedder) -> None:
    clear = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    white = Image.new("RGB", (40, 40), (255, 255, 255))
    np.testing.assert_allclose(embedder.preprocess(clear), embedder.preprocess(white), atol=1e-6)


def test_preprocess_is_thread_safe(embedder: ClipEmbedder) -> None:
    images = [random_image(20 + seed * 7, 90 - seed * 3, seed) for seed in range(24)]
    sequential = [embedder.preprocess(image) for image in images]
    with ThreadPoolExecutor(max_workers=6) as pool:
        parallel = list(pool.map(embedder.preprocess, images))
    for one, other in zip(sequential, parallel, strict=True):
        np.testing.assert_array_equal(one, other)


# ---- captions ----------------------------------------------------------------------------------


def test_short_texts_run_only_up_to_their_end_token_and_give_the_same_vectors(embedder: ClipEmbedder) -> None:
    texts = ["a photo of tractor", "a photo of snow", "farmers drive tractors into the city " * 4]
    lengths: list[int] = []
    hook = embedder._model.transformer.register_forward_hook(lambda m, a, out: lengths.append(a[0].shape[1]))
    try:
        fast = embedder.embed_texts(texts[:2])
        mixed = embedder.embed_texts(texts)
    finally:
        hook.remove()
    assert lengths == [6, 26]  # a batch runs as long as its longest text, not 77 positions
    with torch.inference_mode():
        tokens = embedder._tokenizer(texts)
        full = embedder._model.encode_text(tokens).float().numpy()
    full /= np.linalg.norm(full, axis=1, keepdims=True)
    np.testing.assert_allclose(fast, full[:2], atol=1e-5)
    np.testing.assert_allclose(mixed, full, atol=1e-5)


def test_a_ten_thousand_word_caption_is_truncated(embedder: ClipEmbedder) -> None:
    words = " ".join(["tractor", "protest", "farmers", "road"] * 2500)
    tail_changed = words + " and a completely different ending"
    vectors = embedder.embed_texts([words, tail_changed])
    assert_unit_rows(vectors, 2)
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)  # only the first 77 tokens count


def test_a_megabyte_caption_is_cut_before_tokenising(embedder: ClipEmbedder) -> None:
    started = time.perf_counter()
    vectors = embedder.embed_texts(["x" * 1_000_000, "word " + " " * 500_000 + "tail"])
    assert_unit_rows(vectors, 2)
    assert time.perf_counter() - started < 10  # generous: BPE of the full megabyte would take minutes


def test_empty_caption_is_allowed(embedder: ClipEmbedder) -> None:
    assert_unit_rows(embedder.embed_texts(["", "not empty"]), 2)


def test_a_single_string_is_refused(embedder: ClipEmbedder) -> None:
    with pytest.raises(TypeError, match="sequence"):
        embedder.embed_texts("one caption")


# ---- weights -----------------------------------------------------------------------------------


def test_random_weights_warn_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="indexer.embed.clip"):
        tiny_clip()
    assert any("RANDOM weights" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_checkpoint_round_trip(embedder: ClipEmbedder, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"tiny{suffix}"
    state = {name: tensor.contiguous() for name, tensor in embedder._model.state_dict().items()}
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, path)
    # a different seed: only the file can make them equal
    loaded = tiny_clip(seed=99, checkpoint=path, precision="fp32")
    image, text = random_image(70, 50), ["a checkpoint round trip"]
    np.testing.assert_array_equal(loaded.embed_images([image]), embedder.embed_images([image]))
    np.testing.assert_array_equal(loaded.embed_texts(text), embedder.embed_texts(text))
    identity = loaded.identity()
    assert identity["checkpoint"] == path.name
    assert identity["checkpoint_bytes"] == path.stat().st_size
    assert identity["random_weights"] is False and identity["pretrained"] is None
    assert loaded.model_id == f"open_clip:{TINY_CLIP_ARCH}/{path.name}"


def save_checkpoint(embedder: ClipEmbedder, path: Path) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: tensor.contiguous() for name, tensor in embedder._model.state_dict().items()}, str(path))
    return path


def test_a_pretrained_tag_loads_from_the_hub_cache_offline(
    embedder: ClipEmbedder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The hub cache layout huggingface_hub itself writes: refs/main names the snapshot.
    repo = tmp_path / "hub" / "models--example--tiny-clip"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    save_checkpoint(embedder, repo / "snapshots" / ("0" * 40) / "open_clip_model.safetensors")
    tag_cfg = {"hf_hub": "example/tiny-clip/", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    known = open_clip.get_pretrained_cfg
    monkeypatch.setattr(
        open_clip, "get_pretrained_cfg", lambda arch, tag: tag_cfg if tag == "example" else known(arch, tag)
    )
    loaded = tiny_clip(pretrained="example", cache_dir=tmp_path / "hub", precision="fp32")
    assert loaded.model_id == f"open_clip:{TINY_CLIP_ARCH}/example"
    assert loaded.identity()["pretrained"] == "example" and loaded.identity()["random_weights"] is False
    text = ["weights from the cache"]
    np.testing.assert_array_equal(loaded.embed_texts(text), embedder.embed_texts(text))
    grey = Image.new("RGB", (40, 40), (128, 128, 128))  # the tag's own mean/std is used: 128/255 ~ 0.5
    np.testing.assert_allclose(loaded.preprocess(grey), (128 / 255 - 0.5) / 0.5, atol=1e-6)


def test_a_checkpoint_wins_over_a_pretrained_tag(embedder: ClipEmbedder, tmp_path: Path) -> None:
    path = save_checkpoint(embedder, tmp_path / "tiny.safetensors")
    loaded = tiny_clip(pretrained="laion2b_s34b_b79k", checkpoint=path)  # no hub is asked
    assert loaded.identity()["checkpoint"] == "tiny.safetensors"


def test_missing_checkpoint_fails_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="TOPICS_MODEL__CHECKPOINT"):
        tiny_clip(checkpoint=tmp_path / "absent.safetensors")


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wrong.pt"
    torch.save({"visual.proj": torch.zeros(3, 3)}, path)
    with pytest.raises(ModelUnavailable, match="TOPICS_MODEL__ARCH"):
        tiny_clip(checkpoint=path)


def test_offline_hub_fails_fast_naming_both_fixes(tmp_path: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(ModelUnavailable) as caught:
        ClipEmbedder(cache_dir=tmp_path / "hub")  # ViT-B-32 / laion2b: not cached, HF_HUB_OFFLINE=1
    assert time.perf_counter() - started < 15
    message = str(caught.value)
    assert "TOPICS_MODEL__CHECKPOINT=/path/to/open_clip_model.safetensors" in message
    assert "TOPICS_MODEL__PRETRAINED=none" in message
    assert "HF_HUB_OFFLINE" in message


@pytest.fixture
def online_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend HF_HUB_OFFLINE was never set, as on a user's machine that happens to have no network."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.mark.usefixtures("online_mode")
def test_unresolvable_hub_fails_at_once_without_offline_flag(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.invalid")  # RFC 6761: never resolves
    started = time.perf_counter()
    with pytest.raises(ModelUnavailable, match="TOPICS_MODEL__CHECKPOINT") as caught:
        ClipEmbedder(cache_dir=tmp_path / "hub")
    assert time.perf_counter() - started < 15
    assert "does not resolve" in str(caught.value)


@pytest.mark.usefixtures("online_mode")
def test_a_hanging_download_is_abandoned_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    release = threading.Event()
    monkeypatch.setattr(clip_module, "hub_unavailable_reason", lambda timeout_s: None)  # DNS answers...
    monkeypatch.setattr(open_clip, "download_pretrained", lambda *a, **k: release.wait(60))  # ...TCP hangs
    started = time.perf_counter()
    try:
        with pytest.raises(ModelUnavailable, match="did not answer in 1 s") as caught:
            ClipEmbedder(cache_dir=tmp_path / "hub", load_timeout_s=1.0)
    finally:
        release.set()
    assert time.perf_counter() - started < 5
    assert "TOPICS_MODEL__PRETRAINED=none" in str(caught.value)


def test_unknown_tag_lists_known_ones() -> None:
    with pytest.raises(ModelUnavailable, match="laion2b_s34b_b79k"):
        ClipEmbedder(arch="ViT-B-32", pretrained="no-such-tag")


def test_config_file_must_match_arch() -> None:
    with pytest.raises(ValueError, match=f"TOPICS_MODEL__ARCH={TINY_CLIP_ARCH}"):
        ClipEmbedder(arch="ViT-B-32", pretrained="none", config_file=TINY_CLIP_CONFIG)


def test_deadline_returns_value_or_raises() -> None:
    assert call_with_deadline(lambda: 42, 1.0) == 42
    with pytest.raises(ZeroDivisionError):
        call_with_deadline(lambda: 1 / 0, 1.0)
    release = threading.Event()
    with pytest.raises(DeadlineExceeded):
        call_with_deadline(lambda: release.wait(30), 0.2)
    release.set()


def test_proxy_users_are_not_judged_by_local_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.invalid")
    assert hub_unreachable_reason() is not None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert hub_unreachable_reason() is None


# ---- settings ----------------------------------------------------------------------------------


def test_built_from_environment_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TINY_CLIP_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TOPICS_DEVICE", "cpu")
    monkeypatch.setenv("TOPICS_INGEST__BATCH_SIZE", "5")
    settings = load_settings()
    embedder = build_clip(settings)
    assert embedder.arch == TINY_CLIP_ARCH and embedder.batch_size == 5
    assert embedder.device.type == "cpu" and embedder.random_weights
    assert build_caption_embedder(settings) is None  # default views: image, text
    monkeypatch.setenv("TOPICS_MODEL__PRECISION", "fp32")
    assert build_clip(load_settings())._input_dtype == torch.float32


# ---- precision ---------------------------------------------------------------------------------


def test_auto_precision_is_fp16_on_cuda_bf16_on_a_cpu_with_native_bf16_else_fp32() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cuda) == "fp16"
    assert resolve_precision("auto", cpu, frozenset({"avx2", "avx512_bf16"})) == "bf16"
    assert resolve_precision("auto", cpu, frozenset({"amx_bf16"})) == "bf16"
    assert resolve_precision("auto", cpu, frozenset({"avx2", "avx512f"})) == "fp32"  # bf16 emulated: slower
    assert resolve_precision("auto", torch.device("mps"), frozenset({"avx512_bf16"})) == "fp32"
    assert resolve_precision("fp32", cpu, frozenset({"avx512_bf16"})) == "fp32"
    assert resolve_precision("bf16", cpu, frozenset()) == "bf16"  # asked for: given
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="one of auto, fp32, bf16, fp16"):
        resolve_precision("int8", cpu)


def test_bf16_vectors_stay_within_cosine_0_999_of_fp32(embedder: ClipEmbedder) -> None:
    bf16 = tiny_clip(precision="bf16")
    assert bf16._input_dtype == torch.bfloat16
    assert {p.dtype for p in bf16._model.transformer.parameters()} >= {torch.bfloat16}
    images = [random_image(60 + seed, 45, seed) for seed in range(5)]
    texts = ["a tractor", "farmers drive tractors into the city " * 3, ""]
    for got, want in (
        (bf16.embed_images(images), embedder.embed_images(images)),
        (bf16.embed_texts(texts), embedder.embed_texts(texts)),
    ):
        assert got.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        assert (got * want).sum(axis=1).min() > 0.999
    with torch.inference_mode():  # trimmed to the end token in bf16 too: as close to the whole forward
        full = bf16._model.encode_text(bf16._tokenizer(texts)).float().numpy()
    full /= np.linalg.norm(full, axis=1, keepdims=True)
    assert (bf16.embed_texts(texts) * full).sum(axis=1).min() > 0.999


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_half_precision_matches_cpu(embedder: ClipEmbedder) -> None:
    gpu = tiny_clip(device="cuda")
    assert gpu._input_dtype == torch.float16
    image, text = random_image(90, 60), ["half precision"]
    np.testing.assert_allclose(gpu.embed_images([image]), embedder.embed_images([image]), atol=2e-2)
    np.testing.assert_allclose(gpu.embed_texts(text), embedder.embed_texts(text), atol=2e-2)
