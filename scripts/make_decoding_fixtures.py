#!/usr/bin/env python3
"""Golden greedy decodes for Tests/L2PDDecodingTests, from the NumPy reference decoder.

For a checkpoint (default: the embedded default model, Sources/L2PDDefaultModel/Model)
and a few seeded prompts, runs every policy (baseline, threshold, factor, frechet) x cache mode
(none, prefix, dual) x EoTP (off, on) plus a two-tokens-per-step baseline, and writes the
committed answer, NFE, positions computed and the smallest decision margin of each run.

Prompts come from a task-suite JSONL (`l2pd tasks export --split eval`), put in the
LLaDA-Instruct chat format and tokenized with the checkpoint's tokenizer.json by Hugging Face
`tokenizers`; without --tasks they are random token ids.

Usage: python3 scripts/make_decoding_fixtures.py [--checkpoint DIR] [--tasks FILE] [--out FILE]
           [--prompts N] [--gen-length 64] [--block-length 16] [--tau 0.9] [--configs all|peers]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llada_reference import LLaDA  # noqa: E402
from reference_decode import Options, decode  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=os.path.join(ROOT, "Sources/L2PDDefaultModel/Model"))
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests/L2PDDecodingTests/Fixtures/golden-decodes.json"))
    ap.add_argument("--tasks", help="JSONL from `l2pd tasks export`")
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--configs", default="all", choices=["all", "peers"],
                    help="all: x EoTP and a 2-tokens-per-step baseline; peers: 4 policies x 3 cache modes")
    ap.add_argument("--gen-length", type=int, default=64)
    ap.add_argument("--block-length", type=int, default=16)
    ap.add_argument("--tau", type=float, default=0.9)
    ap.add_argument("--factor", type=float, default=1.0)
    ap.add_argument("--delta", type=float, default=0.25)
    a = ap.parse_args()
    model = LLaDA.load(a.checkpoint)
    cfg = model.config
    rng = np.random.default_rng(2026)
    special = {cfg["mask_token_id"], cfg["eos_token_id"]}
    vocab = [t for t in range(cfg["vocab_size"]) if t not in special]
    if a.tasks:
        from tokenizers import Tokenizer
        from tiny_tokenizer import chat
        tok = Tokenizer.from_file(os.path.join(a.checkpoint, "tokenizer.json"))
        with open(a.tasks) as f:
            lines = [json.loads(line) for line in f][: a.prompts]
        prompts = [tok.encode(chat(e["prompt"]), add_special_tokens=False).ids for e in lines]
    else:
        prompts = [[int(t) for t in rng.choice(vocab, size=int(rng.integers(5, 20)))] for _ in range(a.prompts)]
    runs = []
    configs = [(p, c, e, None) for p in ("baseline", "threshold", "factor", "frechet")
               for c in ("none", "prefix", "dual") for e in (False, True)]
    configs.append(("baseline", "none", False, a.gen_length // 2))
    if a.configs == "peers":
        configs = [(p, c, False, None) for p in ("baseline", "threshold", "factor", "frechet") for c in ("none", "prefix", "dual")]
    for prompt in prompts:
        for policy, cache, eotp, steps in configs:
            options = Options(gen_length=a.gen_length, block_length=a.block_length, steps=steps, policy=policy,
                              tau=a.tau, factor=a.factor, delta=a.delta, cache=cache, eotp=eotp)
            r = decode(model, prompt, options)
            runs.append({"prompt": prompt, "options": options.as_json(), "answer": r["answer"], "nfe": r["nfe"],
                         "positions": r["positions"], "useful_tokens": r["useful_tokens"],
                         "min_gap": r["min_gap"] if np.isfinite(r["min_gap"]) else 1.0})
            print(f"{policy:9s} {cache:6s} eotp={eotp!s:5s} steps={options.effective_steps:3d}  nfe {r['nfe']:3d}  "
                  f"positions {r['positions']:5d}  useful {r['useful_tokens']:3d}  min_gap {r['min_gap']:.2e}", flush=True)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"checkpoint": os.path.basename(os.path.normpath(a.checkpoint)), "runs": runs}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
