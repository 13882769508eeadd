"""Build the untrained demo checkpoint: a small tokenizer and a small LLaVA-ST in the official format.

Tokenizer: a byte-level BPE (``tokenizers``) trained on the demo world's text and the official prompt
templates, with Qwen2's normaliser, split regex, byte-level decoder and special-token conventions, then
the official added-token layout (docs/official_quirks.md#token-ids, docs/official_quirks.md#visual-pipeline):
``<|endoftext|>``, ``<|im_start|>``,
``<|im_end|>``, the 8 image/video markers and the 6 ``*-INPUT/OUTPUT`` placeholders (``vocab_size`` =
V0 + 17 rows of ``embed_tokens``/``lm_head``), then the 300 coordinate tokens at ``vocab_size ...
vocab_size + 299`` with no embedding rows (the coordinate tables provide them).

Model: ``llava_qwen`` config, a SigLIP-architecture tower (384 px, patch 14) in a sub-directory holding
its config, mlp2x_gelu projector, LAPE, the fast/slow TokenPacker and the six coordinate tables --
built by stchat's own ``LlavaSTForCausalLM`` and saved with ``save_pretrained``.

Initialisation choices (the *why*): the tower is frozen during training (as officially), so it is a
fixed random feature extractor; its residual branches are scaled down so that colour and edge
information of the patch embedding survives to the selected layer. The coordinate tables start as
smooth random Fourier features of the bin position, so neighbouring bins are similar from step 0 and
LAPE gives every visual token a position code that the output tables can already read.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stchat.demo.text import DESCRIBE_QUESTIONS, caption, phrase, stvg_question, tvg_question
from stchat.demo.world import COLOURS, MOTIONS, SHAPES, sample_scene

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MARKERS = ["<im_start>", "<im_end>", "<im_patch>", "<vid_start>", "<vid_end>", "<vid_patch>",
           "<slow_vid_start>", "<slow_vid_end>"]
PLACEHOLDERS = ["<TEMP-INPUT>", "<TEMP-OUTPUT>", "<HEIGHT-INPUT>", "<HEIGHT-OUTPUT>", "<WIDTH-INPUT>",
                "<WIDTH-OUTPUT>"]
COORDS = [f"<{k}-{i:03d}>" for k in ("TEMP", "HEIGHT", "WIDTH") for i in range(100)]
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
              r"\s*[\r\n]+|\s+(?!\S)|\s+")
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)



# Other official wordings (docs/official_quirks.md#task-questions), so that their prompts tokenise into few
# pieces too.
OTHER_TEMPLATES = (
    "Please firstly give the end timestamp, then give the event associated with the object/subject, "
    "finally give the spatial bounding box corresponding to each timestamp in the time period.",
    "Can you provide a thorough description of this image? "
    "Please output with interleaved bounding boxes for the corresponding phrases.",
    "During the span of", "In the time range", "During the period", "Within the time frame of",
    "In the time period", "During", "Between", "At",
    "Where can I find <event> in this image?", "What part of this image contains <event>?",
    "Where does <event> appear in this image?", "Where is <event> situated within this image?",
)

DEMO_SIZES: dict[str, Any] = {
    "hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 3, "num_attention_heads": 4,
    "num_key_value_heads": 2, "tower_width": 32, "tower_mlp": 64, "tower_heads": 2, "tower_layers": 2,
    "packer_embed_dim": 32, "packer_heads": 2,
    # Off in the shipped v2 recipe; on (``python -m stchat.demo init --align-colours``) in the session-9
    # mixed run: the two init choices that made the REC lineage of checkpoints/demo_rec read boxes.
    "align_colours": False,
}


def corpus(n_scenes: int = 3000, seed: int = 0) -> list[str]:
    """Texts the BPE is trained on: official templates, the demo world's questions, captions, separators."""
    from stchat.demo import text as t

    rng = random.Random(seed)
    texts = ["You are a helpful assistant.", "system", "user", "assistant", "\n", "{}, : [], ",
             t.STVG_SUFFIX, t.SVG_SUFFIX, t.LOCATE_IN_VIDEO, t.TVG_TEMPLATE, *OTHER_TEMPLATES,
             *DESCRIBE_QUESTIONS,
             "Describe what took place during the period {,} in the video.",
             "Please describe the location of the object in this image.",
             "What object can be observed within the region [,,,] in the image?",
             "Starts in , what happened about the subject/object within the specified region [, , , ]?",
             "Ends in , ", "0123456789", "0.5 0.25 12 99"]
    for c in COLOURS:
        for s in SHAPES:
            for m in (*MOTIONS, None):
                p = phrase(c, s, m, rng)
                texts += [stvg_question(p), tvg_question(p), f"Between {{, }}, where is {p}?"]
    for i in range(n_scenes):
        texts.append(caption(sample_scene(10_000_000 + i, height=240, seconds=3)))
    return texts


def build_tokenizer(out: Path, vocab_target: int = 1024) -> int:
    """Train the BPE and write the tokenizer files in Qwen2's layout; returns ``vocab_size`` (V0 + 17)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_target, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer=trainer)
    v0 = tok.get_vocab_size()
    from transformers import Qwen2TokenizerFast

    fast = Qwen2TokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>",
                              pad_token="<|endoftext|>", unk_token=None, errors="replace",
                              clean_up_tokenization_spaces=False, model_max_length=32768,
                              padding_side="right", split_special_tokens=False)
    # the official order (docs/official_quirks.md#visual-pipeline)
    for group in (SPECIALS, MARKERS, PLACEHOLDERS, COORDS):
        fast.add_tokens(group, special_tokens=True)
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    fast.chat_template = CHAT_TEMPLATE
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    vocab_size = v0 + len(SPECIALS) + len(MARKERS) + len(PLACEHOLDERS)
    assert fast.convert_tokens_to_ids("<TEMP-000>") == vocab_size, "coordinate tokens misplaced"
    assert len(fast) == vocab_size + 300
    return vocab_size


def _fourier_table(rows: int, dim: int, gen: torch.Generator, scale: float) -> torch.Tensor:
    """Smooth random features of the bin position k/(rows-1): neighbouring rows are similar."""
    pos = torch.arange(rows, dtype=torch.float64)[:, None] / (rows - 1)
    freq = torch.rand(1, dim, generator=gen, dtype=torch.float64) * 6.0 + 0.25
    phase = torch.rand(1, dim, generator=gen, dtype=torch.float64) * 2 * math.pi
    return (torch.cos(2 * math.pi * freq * pos + phase) * scale).float()


def build_model(out: str | Path, seed: int = 0, sizes: dict[str, Any] | None = None) -> Path:
    """Write an untrained demo checkpoint (official format) to ``out``; deterministic for a seed."""
    from stchat.model.configuration_llava_st import LlavaSTConfig
    from stchat.model.modeling_llava_st import LlavaSTForCausalLM

    sz = {**DEMO_SIZES, **(sizes or {})}
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    vocab_size = build_tokenizer(out)
    tower_name = "siglip-demo-patch14-384"
    (out / tower_name).mkdir()
    (out / tower_name / "config.json").write_text(json.dumps({
        "architectures": ["SiglipModel"], "model_type": "siglip", "torch_dtype": "float32",
        "vision_config": {"hidden_size": sz["tower_width"], "image_size": 384,
                          "intermediate_size": sz["tower_mlp"], "model_type": "siglip_vision_model",
                          "num_attention_heads": sz["tower_heads"], "num_hidden_layers": sz["tower_layers"],
                          "patch_size": 14, "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6},
        "_comment": "stchat demo tower: SigLIP architecture, random frozen weights (stchat.demo.build)."},
        indent=2))
    golden_like = json.loads((Path(__file__).parent / "config_template.json").read_text())
    golden_like.update({
        "vocab_size": vocab_size, "bos_token_id": vocab_size - 17, "eos_token_id": vocab_size - 15,
        "hidden_size": sz["hidden_size"], "intermediate_size": sz["intermediate_size"],
        "num_hidden_layers": sz["num_hidden_layers"], "max_window_layers": sz["num_hidden_layers"],
        "num_attention_heads": sz["num_attention_heads"], "num_key_value_heads": sz["num_key_value_heads"],
        "mm_hidden_size": sz["tower_width"], "mm_token_packer_embed_dim": sz["packer_embed_dim"],
        "mm_token_packer_num_heads": sz["packer_heads"], "mm_vision_tower": tower_name,
        "vision_tower": tower_name,
    })
    config = LlavaSTConfig(**golden_like)
    config._name_or_path = str(out)
    torch.manual_seed(seed)
    model = LlavaSTForCausalLM(config)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".vision_tower." in name:
                if name.endswith(("out_proj.weight", "fc2.weight")):
                    p.mul_(0.1)  # keep the patch colours/edges dominant in the frozen random tower
            if name.endswith(("_input_embeddings.weight", "_output_embeddings.weight")):
                kind = name.split(".")[-2].rsplit("_", 2)[0]  # temporal / spatial_height / spatial_width
                kind_gen = torch.Generator().manual_seed(seed + hash_name(kind))
                # Same code for a kind's input and output table (so LAPE's (in + out) / 2 is the code the
                # output rows read); output rows small so that the first logits are O(1), not O(10).
                scale = (4.0 if "_input_" in name else 0.5) / math.sqrt(p.shape[1])
                p.copy_(_fourier_table(p.shape[0], p.shape[1], kind_gen, scale))
                p.add_(torch.randn(p.shape, generator=gen) * 0.1 * scale)
        if sz["align_colours"]:
            # Unit-gain projector: at the default 0.02 init its output is ~100x smaller than the LAPE codes
            # added to it, so every video looks the same to the LLM (checkpoints/demo_rec/README.md).
            proj = model.model.mm_projector
            proj[0].weight.normal_(0.0, 4.0 / math.sqrt(proj[0].weight.shape[1]), generator=gen)
            proj[2].weight.normal_(0.0, 1.0 / math.sqrt(proj[2].weight.shape[1]), generator=gen)
            _align_colour_words(model, out, sz, seed)
        # lm_head is frozen in full fine-tuning (official, Q15): with the default 0.02 init its logits
        # stay tiny and text tokens cannot be learned (measured: text loss still 4.6 after 160 steps).
        # The golden fixture's scale gives logits with std ~2.5 that the trained hidden states can use.
        model.lm_head.weight.normal_(0.0, 2.5 / math.sqrt(model.lm_head.weight.shape[1]), generator=gen)
    model.save_pretrained(str(out), safe_serialization=True)
    (out / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": vocab_size - 17, "eos_token_id": vocab_size - 15}, indent=2))
    return out


def hash_name(text: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(text))


def _align_colour_words(model: Any, out: Path, sz: dict[str, Any], seed: int) -> None:
    """Stand-in for the language alignment a pretrained SigLIP brings: colour words find their pixels.

    The released model's tower is CLIP-style pretrained, so a word and the pixels it names already share
    a direction. Ours is random, and a from-scratch LLM has to discover a query/key pairing from a colour
    word to the pixels of that colour before any box answer can improve: on REC frames (session 4) no
    answer depended on the image after 3,000 steps, whatever the learning rate or weight decay; with this
    pairing the first WIDTH followed the object after ~750 steps of batch 16.
    Two layer-0 query heads are set so that a colour word's query matches the keys of visual tokens of
    that colour: the word's embedding is its colour's projected feature (centred over the palette)
    rotated by a fixed random orthogonal R, and the heads' query weights are their key weights times R^T
    (the rotation keeps the word from matching itself: its own key is R d, its query d). Everything
    downstream -- reading positions, answering, the other heads -- is left to training.
    """
    from transformers import AutoTokenizer

    from stchat.demo.world import COLOURS
    from stchat.processing.image import preprocess

    c = sz["hidden_size"]
    gen = torch.Generator().manual_seed(seed + 7)
    rot, _ = torch.linalg.qr(torch.randn(c, c, generator=gen))
    feats = {}
    for name, rgb in COLOURS.items():
        px = preprocess(np.full((64, 64, 3), rgb, dtype=np.uint8))
        feats[name] = model.model.mm_projector(model.model.vision_tower(px)).mean((0, 1))
    mean = torch.stack(list(feats.values())).mean(0)
    tok = AutoTokenizer.from_pretrained(str(out))
    embed = model.model.embed_tokens.weight
    single = 0
    for name, f in feats.items():
        d = f - mean
        code = rot @ (d / d.norm()) * (0.05 * math.sqrt(c))  # rms 0.05: a little above the other rows
        for word in (name, " " + name, name.capitalize(), " " + name.capitalize()):
            ids = tok.encode(word, add_special_tokens=False)
            if len(ids) == 1:
                embed[ids[0]] = code
                single += word.startswith(" ")
    if not single:
        raise RuntimeError("no colour word is a single token after a space")
    attn = model.model.layers[0].self_attn
    head_dim = c // sz["num_attention_heads"]
    group = sz["num_attention_heads"] // sz["num_key_value_heads"]
    keys = torch.randn(head_dim, c, generator=gen) * 0.15  # similarity logits of several units
    attn.k_proj.weight[:head_dim] = keys
    for h in range(group):  # the query heads that read KV head 0
        attn.q_proj.weight[h * head_dim:(h + 1) * head_dim] = keys @ rot.T
