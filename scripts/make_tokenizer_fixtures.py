#!/usr/bin/env python3
"""Tokenizer fixtures and golden ids for Tests/L2PDTokenizerTests, from Hugging Face `tokenizers`.

Writes two small byte-level BPE tokenizers trained on a built-in corpus:
    llama3-style/tokenizer.json   the default model's recipe (LLaMA-3 split pattern, single digits,
                                  ByteLevel without regex, ignore_merges)
    gpt2-style/tokenizer.json     ByteLevel with GPT-2's own regex, no Split
and golden.json next to each: for every test string, the ids `tokenizers` produces
(add_special_tokens=False) and the text it decodes back (skip_special_tokens False and True).

Usage: python3 scripts/make_tokenizer_fixtures.py [OUT_DIR]
"""

from __future__ import annotations

import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_tokenizer import SPECIALS, chat, train_tokenizer  # noqa: E402

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is 482 + 39? 482 + 39 = 521",
    "Copy the digits 0123456789. Reverse the digits 9876543210.",
    "Sort 4 0 5 5 7 in ascending order. How many times does 8 occur in 4862?",
    "We'll see, they're here, I'm sure it's fine, you've done it, he'd go.",
    "Diffusion language models unmask tokens in parallel; the filter decides which are final.",
    "def add(a, b):\n    return a + b\n\n\nprint(add(1, 2))",
    "naïve café — déjà vu. Größe, Straße. 東京 と 大阪. Привет, мир!",
] * 20

CASES = [
    "Hello world",
    "What is 1234 + 5678?",
    "  leading spaces and trailing   ",
    "line one\nline two\r\n\n\ttabbed",
    "We'll they're I'M it's",
    "naïve café 東京 🚀 emoji 👩‍💻",
    "digits 3.14159 and 2,718,281 and ١٢٣",
    "<|startoftext|>special<|eot_id|>inside<|endoftext|>",
    "a<|mdm_mask|><|mdm_mask|>b",
    chat("Copy the digits 8675309."),
    "def f(x):\n    return x**2  # square\n",
    "",
    " ",
    "unknownwordzzzqqq xylophone",
]


def gpt2_style(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def write(tok: Tokenizer, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    tok.save(os.path.join(directory, "tokenizer.json"))
    cases = []
    for text in CASES:
        ids = tok.encode(text, add_special_tokens=False).ids
        cases.append({"text": text, "ids": ids,
                      "decoded": tok.decode(ids, skip_special_tokens=False),
                      "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
    specials = {t: tok.token_to_id(t) for t in SPECIALS}
    with open(os.path.join(directory, "golden.json"), "w") as f:
        json.dump({"vocab_size": tok.get_vocab_size(), "specials": specials, "cases": cases}, f,
                  indent=1, ensure_ascii=False)


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "L2PDTokenizerTests", "Fixtures")
    write(train_tokenizer(CORPUS, 420), os.path.join(out, "llama3-style"))
    write(gpt2_style(CORPUS), os.path.join(out, "gpt2-style"))


if __name__ == "__main__":
    main()
