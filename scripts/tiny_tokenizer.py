"""Byte-level BPE tokenizer for the tiny default model, built with Hugging Face `tokenizers`.

LLaMA-3's pre-tokenizer split pattern with one change: digits are split one by one
(`\\p{N}` instead of `\\p{N}{1,3}`), so every digit is its own token. Then byte-level mapping
without GPT-2's regex, and the byte-level decoder. Special tokens come first (ids 0..5).
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
BOS, EOS, MASK = "<|startoftext|>", "<|endoftext|>", "<|mdm_mask|>"
HEADER_START, HEADER_END, EOT = "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"
SPECIALS = [BOS, EOS, MASK, HEADER_START, HEADER_END, EOT]


def chat(user: str) -> str:
    """LLaDA-Instruct's template for one user turn, up to where the answer begins."""
    return f"{BOS}{HEADER_START}user{HEADER_END}\n\n{user}{EOT}{HEADER_START}assistant{HEADER_END}\n\n"


def train_tokenizer(texts, vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok
