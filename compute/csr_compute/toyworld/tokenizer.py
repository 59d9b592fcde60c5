"""Word-level tokenizers built locally from the world's own texts (no model hub).

One vocabulary serves both models. The LVLM's tokenizer prepends ``<s>`` like LLaMA's; the CLIP's
wraps each text in ``<s> ... </s>`` because CLIP pools the text at its end-of-text token.
Every word is one token and decoding joins tokens with spaces, so "." is its own token and a
response decodes as "the cup is small and red . the plate is big and white .".
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from .language import all_words

PAD, UNK, BOS, EOS, IMAGE = "<pad>", "<unk>", "<s>", "</s>", "<image>"
SPECIAL = (PAD, UNK, BOS, EOS, IMAGE)


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Whitespace()


def vocabulary() -> dict[str, int]:
    """Special tokens first (fixed ids 0-4), then every word of the world in sorted order."""
    split = _pre_tokenizer()
    words = sorted({piece for text in all_words() for piece, _ in split.pre_tokenize_str(text.lower())})
    return {token: index for index, token in enumerate([*SPECIAL, *words])}


def build(kind: str) -> "PreTrainedTokenizerFast":  # noqa: F821 - imported lazily below
    """The ``"lvlm"`` or ``"clip"`` tokenizer, as a ``PreTrainedTokenizerFast``."""
    from transformers import PreTrainedTokenizerFast

    vocab = vocabulary()
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = _pre_tokenizer()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    if kind == "lvlm":
        core.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])])
        padding_side = "left"  # generation batches pad on the left, like llava-hf's tokenizer
        max_length = 256
    elif kind == "clip":
        core.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A {EOS}", pair=f"{BOS} $A $B {EOS}",
            special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])])
        padding_side = "right"
        max_length = 32
    else:
        raise ValueError(f"kind: expected 'lvlm' or 'clip', got {kind!r}")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=BOS, eos_token=EOS, unk_token=UNK, pad_token=PAD,
        extra_special_tokens={"image_token": IMAGE} if kind == "lvlm" else None,
        padding_side=padding_side, model_max_length=max_length,
    )
    return tokenizer
