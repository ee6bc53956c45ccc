"""Generated captions from a tiny image-to-text model built here; unloadable models fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.embed.base import ModelUnavailable, l2_normalise
from topics.represent import Representer, RepresentOptions
from topics.represent.captioner import SETTING, CaptionModelUnavailable, ImageCaptioner

WORDS = ["tractor", "farm", "boat", "sea", "red", "blue"]


def tiny_captioner_dir(root: Path, say: str = "tractor") -> Path:
    """A random ViT + GPT-2 captioner whose decoder is rigged to always say `say` (then a known word)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        GPT2Config,
        PreTrainedTokenizerFast,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    vocab = {"[PAD]": 0, "[BOS]": 1, "[EOS]": 2, "[UNK]": 3} | {w: i + 4 for i, w in enumerate(WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", bos_token="[BOS]", eos_token="[EOS]", unk_token="[UNK]"
    )
    encoder = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    decoder = GPT2Config(
        vocab_size=len(vocab), n_positions=32, n_embd=32, n_layer=1, n_head=2, bos_token_id=1, eos_token_id=2
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 1, 0, 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = VisionEncoderDecoderModel(config=config)
    with torch.no_grad():
        # Constant final hidden state aligned with one word's (tied) embedding: greedy decoding says it.
        final_norm = model.decoder.transformer.ln_f
        direction = torch.randn(32)
        final_norm.weight.zero_()
        final_norm.bias.copy_(direction)
        model.decoder.transformer.wte.weight[vocab[say]] = direction * 10
    out = root / "tiny-captioner"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(out)
    return out


@pytest.mark.slow  # builds a model; the first import of transformers takes seconds
def test_tiny_model_loads_by_path_and_captions_images(tmp_path: Path) -> None:
    captioner = ImageCaptioner(
        str(tiny_captioner_dir(tmp_path)), device="cpu", max_new_tokens=4, batch_size=2
    )
    images = [Image.new("RGB", (40 + i, 30), (i * 40, 80, 80)) for i in range(5)]
    captions = captioner.caption(images)
    assert len(captions) == 5
    assert all(caption.split() == ["tractor"] * 4 for caption in captions)

    good = tmp_path / "good.png"
    images[0].save(good)
    assert captioner.caption_paths([good, None, tmp_path / "missing.jpg", "https://x/y.jpg"]) == [
        "tractor tractor tractor tractor",
        None,
        None,
        None,
    ]


@pytest.mark.slow  # builds a model; the first import of transformers takes seconds
def test_generated_captions_feed_the_words_of_image_only_topics(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(12):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (36, 36), (200, i * 20, 0)).save(paths[-1])
    centres = {0: l2_normalise(rng.normal(size=8)), 1: l2_normalise(rng.normal(size=8))}
    vectors = l2_normalise(np.vstack([centres[t] + 0.2 * rng.normal(size=(12, 8)) for t in (0, 1)]))
    options = RepresentOptions(
        captioner_model=str(tiny_captioner_dir(tmp_path)), tiles_dir=None, device="cpu"
    )
    representer = Representer(centres, options)
    representer.add_batch(
        np.repeat([0, 1], 12),
        [f"i{i}" for i in range(24)],
        vectors,
        image_vectors=vectors,
        captions=[None] * 12 + ["blue sea boat"] * 12,  # topic 1 has captions: nothing generated
        image_paths=paths + paths,
    )
    result = representer.finish()
    assert len(result[0].generated_captions) == 9
    assert result[0].words[0][0] == "tractor"
    assert result[0].label == "tractor"
    assert result[1].generated_captions == ()
    assert "tractor" not in dict(result[1].words)


def test_hub_id_fails_fast_and_clearly_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CaptionModelUnavailable) as caught:
        ImageCaptioner("nobody/no-such-captioner", device="cpu")
    message = str(caught.value)
    assert SETTING in message and "nobody/no-such-captioner" in message and "offline" in message
    assert isinstance(caught.value, ModelUnavailable) and isinstance(caught.value, RuntimeError)


def test_a_directory_without_a_model_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CaptionModelUnavailable, match=rf"does not hold a loadable.*{SETTING}"):
        ImageCaptioner(str(tmp_path / "empty"), device="cpu")


def test_representer_fails_before_any_work_when_the_model_cannot_load() -> None:
    with pytest.raises(CaptionModelUnavailable, match=SETTING):
        Representer({0: np.ones(4)}, RepresentOptions(captioner_model="nobody/no-such-captioner"))
