"""A tiny, randomly initialised FLUX.1 Kontext pipeline built entirely offline.

The component sizes follow diffusers' own ``tests/pipelines/flux/test_pipeline_flux_kontext.py``
(hidden sizes of 32, one block of each kind), except that the VAE downsamples by 2 and has four
latent channels, so packing 2x2 latent patches gives the transformer's 16 input channels and
images must be multiples of 4 pixels. Both tokenizers are built in memory from a small vocabulary
(no hub look-up): a byte-level BPE for CLIP and a Unigram model for T5.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxTransformer2DModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5Tokenizer

from engine.models.backbones.kontext import SETTINGS_FILE

# The working area of the tiny model: 32 x 32 pixels = 16 x 16 latents = 64 tokens.
TINY_RESOLUTION = 32
# A short T5 sequence keeps the joint attention small; the real model uses 512.
TINY_SEQUENCE_LENGTH = 16
CHARACTERS = string.ascii_lowercase + string.digits + ".,!?'-"


def tiny_clip_tokenizer() -> CLIPTokenizer:
    """A CLIP byte-level BPE tokenizer with one token per character (no merges).

    CLIP marks a word's last piece with ``</w>``, so every character appears in both forms.
    """
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for character in CHARACTERS:
        vocab[character] = len(vocab)
        vocab[character + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_t5_tokenizer() -> T5Tokenizer:
    """A T5 Unigram tokenizer over single characters, with and without the word-start marker."""
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(character, -3.0) for character in CHARACTERS]
    vocab += [("\u2581" + character, -2.5) for character in CHARACTERS]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)


def tiny_kontext_pipeline(seed: int = 0) -> FluxKontextPipeline:
    """All seven components of a FluxKontextPipeline at toy sizes, seeded."""
    clip_tokenizer = tiny_clip_tokenizer()
    t5_tokenizer = tiny_t5_tokenizer()
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=True,
        axes_dims_rope=(4, 4, 8),
    )
    torch.manual_seed(seed + 1)
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(clip_tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            projection_dim=32,
            bos_token_id=clip_tokenizer.bos_token_id,
            eos_token_id=clip_tokenizer.eos_token_id,
            pad_token_id=clip_tokenizer.pad_token_id,
        )
    )
    torch.manual_seed(seed + 2)
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(t5_tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=t5_tokenizer.pad_token_id,
            eos_token_id=t5_tokenizer.eos_token_id,
            decoder_start_token_id=t5_tokenizer.pad_token_id,
        )
    )
    torch.manual_seed(seed + 3)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=TINY_RESOLUTION,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    # The real FLUX.1 Kontext scheduler config: resolution-dependent shift between 0.5 and 1.15.
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
        base_image_seq_len=256, max_image_seq_len=4096,
    )
    return FluxKontextPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=clip,
        tokenizer=clip_tokenizer,
        text_encoder_2=t5,
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )


def save_tiny_kontext(folder: Path) -> Path:
    """Save the tiny pipeline as a user's model folder, with Atelier's optional settings file."""
    tiny_kontext_pipeline().save_pretrained(folder)
    settings = {"native_resolution": TINY_RESOLUTION, "max_sequence_length": TINY_SEQUENCE_LENGTH, "default_steps": 3}
    (folder / SETTINGS_FILE).write_text(json.dumps(settings))
    return folder


@pytest.fixture(scope="session")
def tiny_kontext_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a saved tiny FluxKontextPipeline (built once per test session)."""
    return save_tiny_kontext(tmp_path_factory.mktemp("tiny-kontext"))
