#!/usr/bin/env python3
"""Independent NumPy reference of greedy LLaDA decoding with the Fast-dLLM peers and EoTP.

Written from the published algorithms (LLaDA's low-confidence remasking sampler, Fast-dLLM's
threshold / factor policies, Fast-dLLM++'s Fréchet-profile rule and prefix / dual K/V caches, Learn2PD's end-of-text prediction),
not from the Swift decoder. The forward pass is `llada_reference.py` (float64). It exists to
produce golden decodes for Tests/L2PDDecodingTests; it is slow and meant for tiny models only.

The algorithm (temperature 0):
    canvas = prompt + gen_length masks, split into blocks of block_length, decoded in order;
    steps_per_block = steps / num_blocks.
    per block:
        schedule = masked-in-block spread over steps_per_block, remainder on the first steps
        while any position of the block is masked (no pass once the block is complete):
            one forward pass (see cache modes); per position pred = argmax over all
            embedding_size logits (first index on ties), confidence = softmax(logits)[pred]
            the policy picks still-masked block positions to commit:
                baseline   the quota most confident (quota = schedule[step in block], 1 past
                           the schedule's end, at least 1)
                threshold  every one with confidence >= tau, and always the most confident
                factor     sorted descending c_1 >= c_2 >= ...: the largest n with
                           (n + 1)(1 - c_n) < f, at least 1
                frechet    sorted descending: L_n = max(0, c_1 + ... + c_n - (n - 1)),
                           U_n = 1 - c_n; the largest n with L_n - U_n > delta, at least 1
            confidence order is descending with ties broken toward the lower position
            EoTP (optional), after the commit: among still-masked positions that predict
            end-of-text (the whole remaining canvas without a cache, only the current block
            with one) take the most confident p (ties: lower position); position p becomes
            end-of-text (committed) and the canvas ends after p: later passes are shorter and
            blocks that start at or after the new end are skipped.
    cache modes (Fast-dLLM):
        none    every pass computes the whole canvas
        prefix  the block's first pass is a full pass that refreshes the cache; later passes
                compute block_start..end, attending to the cached prefix K/V
        dual    like prefix, but later passes compute only the block, attending to the cached
                K/V of prefix and suffix (the suffix's K/V stay stale until the next block)
    the answer is the canvas after the prompt, positions removed by EoTP being end-of-text;
    useful tokens are those before the first end-of-text.
    NFE = forward passes; positions = positions computed, summed over passes.

Confidences are computed in float64 and rounded to float32, the readout's type, before any
decision. Near ties: float32 (Swift) and float64 (here) can still disagree on a decision whose inputs are
almost equal. Each step records `gap`, the smallest margin of any decision that step made:
the confidence gap at the commit boundary (top-k: c_k - c_(k+1); threshold: |c - tau| over
the candidates, and c_1 - c_2 when the forced one is below tau; factor: |c_n - (1 - f/(n+1))|
and c_n - c_(n+1); frechet: |L_n - U_n - delta| and c_n - c_(n+1)), the top-1/top-2 probability gap of every committed prediction, and for
EoTP the top-1/top-2 gap where end-of-text is one of the two and the gap between the two most
confident end-of-text candidates. A run's `min_gap` is the smallest over its steps.

API:
    model = LLaDA.load(checkpoint_dir)
    result = decode(model, prompt, Options(...))   -> dict (answer, nfe, positions, ...)

Usage: python3 scripts/reference_decode.py CHECKPOINT_DIR [--policy baseline|threshold|factor|frechet]
           [--tau 0.9] [--factor 1] [--delta 0.25] [--cache none|prefix|dual] [--eotp] [--gen-length 64]
           [--block-length 16] [--steps N] TOKEN_ID [TOKEN_ID ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llada_reference import LLaDA  # noqa: E402


@dataclass
class Options:
    gen_length: int = 64
    block_length: int = 16
    steps: int | None = None          # None: gen_length
    policy: str = "baseline"          # baseline | threshold | factor | frechet
    tau: float = 0.9
    factor: float = 1.0
    delta: float = 0.25
    cache: str = "none"               # none | prefix | dual
    eotp: bool = False

    def as_json(self) -> dict:
        return {"gen_length": self.gen_length, "block_length": self.block_length,
                "steps": self.effective_steps, "policy": self.policy, "tau": self.tau,
                "factor": self.factor, "delta": self.delta, "cache": self.cache, "eotp": self.eotp}

    @property
    def effective_steps(self) -> int:
        return self.gen_length if self.steps is None else self.steps


class DecodeError(ValueError):
    pass


def fixed_schedule(masked: int, steps: int) -> list[int]:
    """LLaDA's per-step quota: `masked` spread over `steps`, remainder on the first steps."""
    base, extra = divmod(masked, steps)
    return [base + (1 if s < extra else 0) for s in range(steps)]


@dataclass
class Prediction:
    """Readout of one position: argmax token, its probability, the runner-up probability,
    P(end-of-text) and the runner-up token."""
    token: int
    confidence: float
    second: float
    second_token: int


def predictions(logits: np.ndarray) -> list[Prediction]:
    out = []
    for row in logits:
        row = np.asarray(row, dtype=np.float64)
        p = np.exp(row - row.max())
        p /= p.sum()
        top = int(np.argmax(row))              # first index on ties
        rest = p.copy()
        rest[top] = -1.0
        runner = int(np.argmax(rest))
        # Confidences are float32 in the engine's readout (and on the wire): decide on the
        # same rounded values, so probabilities that round to 1.0 tie and go to the lower position.
        out.append(Prediction(top, float(np.float32(p[top])), float(np.float32(p[runner])), runner))
    return out


def by_confidence(candidates: list[int], conf: dict[int, float]) -> list[int]:
    """Descending confidence; equal confidences keep the lower position first."""
    return sorted(candidates, key=lambda i: (-conf[i], i))


def choose(options: Options, masked: list[int], conf: dict[int, float], quota: int) -> tuple[list[int], float]:
    """Positions to commit among `masked` (absolute positions) and the decision's margin."""
    order = by_confidence(masked, conf)
    c = [conf[i] for i in order]
    gap = float("inf")
    if options.policy == "baseline":
        k = max(1, quota)
        if k < len(c):
            gap = c[k - 1] - c[k]
        return order[:k], gap
    if options.policy == "threshold":
        tau = options.tau
        chosen = [order[0]] + [i for i in order[1:] if conf[i] >= tau]
        for value in c[1:]:
            gap = min(gap, abs(value - tau))
        if len(c) > 1 and c[1] < tau:
            gap = min(gap, c[0] - c[1])
        return chosen, gap
    if options.policy == "factor":
        f = options.factor
        n = 0
        for rank, value in enumerate(c, start=1):
            if (rank + 1) * (1 - value) < f:
                n = rank
            if rank > 1:
                gap = min(gap, abs(value - (1 - f / (rank + 1))))
        n = max(1, n)
        if n < len(c):
            gap = min(gap, c[n - 1] - c[n])
        return order[:n], gap
    if options.policy == "frechet":
        n, total = 0, 0.0
        for rank, value in enumerate(c, start=1):
            total += value
            statistic = max(0.0, total - (rank - 1)) - (1 - value)
            if statistic > options.delta:
                n = rank
            gap = min(gap, abs(statistic - options.delta))
        n = max(1, n)
        if n < len(c):
            gap = min(gap, c[n - 1] - c[n])
        return order[:n], gap
    raise DecodeError(f"unknown policy {options.policy!r}")


@dataclass
class Run:
    canvas: list[int]
    length: int
    nfe: int = 0
    positions: int = 0
    steps: list[dict] = field(default_factory=list)


def decode(model: LLaDA, prompt: list[int], options: Options, max_passes: int = 10_000) -> dict:
    cfg = model.config
    mask, eos = cfg["mask_token_id"], cfg["eos_token_id"]
    gen, blen, steps = options.gen_length, options.block_length, options.effective_steps
    if not prompt:
        raise DecodeError("empty prompt")
    if gen % blen:
        raise DecodeError("gen_length must be a multiple of block_length")
    num_blocks = gen // blen
    if steps <= 0 or steps % num_blocks:
        raise DecodeError("steps must be a positive multiple of the number of blocks")
    if len(prompt) + gen > cfg["max_sequence_length"]:
        raise DecodeError("prompt plus gen_length exceeds max_sequence_length")
    if options.policy == "threshold" and not (0 < options.tau <= 1):
        raise DecodeError("threshold outside (0, 1]")
    steps_per_block = steps // num_blocks

    lp = len(prompt)
    run = Run(canvas=list(prompt) + [mask] * gen, length=lp + gen)
    cache = None

    for b in range(num_blocks):
        start = lp + b * blen
        if start >= run.length:
            break                                   # removed by EoTP

        def block() -> range:
            return range(start, min(start + blen, run.length))

        schedule = fixed_schedule(sum(run.canvas[i] == mask for i in block()), steps_per_block)
        k = 0
        while any(run.canvas[i] == mask for i in block()):
            if run.nfe >= max_passes:
                raise DecodeError("no progress: the pass limit was reached")
            tokens = run.canvas[:run.length]
            # The forward pass: rows for the computed range [lo, hi).
            if options.cache == "none":
                lo, hi = 0, run.length
                logits = model.forward(tokens)
            elif k == 0:                            # block start: full pass, fresh cache
                lo, hi = 0, run.length
                logits, cache = model.forward_with_cache(tokens)
            else:
                lo = start
                hi = run.length if options.cache == "prefix" else block().stop
                trimmed = [(kk[:, :run.length], vv[:, :run.length]) for kk, vv in cache]
                logits, _ = model.cached_step(tokens, trimmed, lo, hi)
            run.nfe += 1
            run.positions += hi - lo
            pred = dict(zip(range(lo, hi), predictions(logits)))

            masked = [i for i in block() if run.canvas[i] == mask]
            conf = {i: pred[i].confidence for i in masked}
            quota = schedule[k] if k < len(schedule) else 1
            chosen, gap = choose(options, masked, conf, quota)
            for i in chosen:
                run.canvas[i] = pred[i].token
                gap = min(gap, pred[i].confidence - pred[i].second)

            end = None
            if options.eotp:
                reads = list(block()) if options.cache != "none" else list(range(start, run.length))
                open_ = [i for i in reads if run.canvas[i] == mask]
                eos_candidates = by_confidence([i for i in open_ if pred[i].token == eos],
                                               {i: pred[i].confidence for i in open_})
                for i in open_:
                    if pred[i].token == eos or pred[i].second_token == eos:
                        gap = min(gap, pred[i].confidence - pred[i].second)
                if len(eos_candidates) > 1:
                    gap = min(gap, pred[eos_candidates[0]].confidence - pred[eos_candidates[1]].confidence)
                if eos_candidates:
                    end = eos_candidates[0]
                    run.canvas[end] = eos
                    run.length = end + 1
            run.steps.append({"block": b, "step_in_block": k, "committed": [i - lp for i in chosen],
                              "end_of_text": None if end is None else end - lp, "gap": gap})
            k += 1

    answer = run.canvas[lp:run.length] + [eos] * (lp + gen - run.length)
    if mask in answer:                              # cannot happen once every block is done
        first = answer.index(mask)
        answer[first:] = [eos] * (len(answer) - first)
    useful = answer.index(eos) if eos in answer else len(answer)
    gaps = [s["gap"] for s in run.steps]
    return {"answer": answer, "nfe": run.nfe, "positions": run.positions, "useful_tokens": useful,
            "answer_length": run.length - lp, "min_gap": min(gaps) if gaps else float("inf"),
            "steps": run.steps}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Greedy LLaDA decoding, NumPy reference.")
    parser.add_argument("checkpoint")
    parser.add_argument("tokens", nargs="+", type=int)
    parser.add_argument("--policy", default="baseline", choices=["baseline", "threshold", "factor", "frechet"])
    parser.add_argument("--tau", type=float, default=0.9)
    parser.add_argument("--factor", type=float, default=1.0)
    parser.add_argument("--delta", type=float, default=0.25)
    parser.add_argument("--cache", default="none", choices=["none", "prefix", "dual"])
    parser.add_argument("--eotp", action="store_true")
    parser.add_argument("--gen-length", type=int, default=64)
    parser.add_argument("--block-length", type=int, default=16)
    parser.add_argument("--steps", type=int, default=None)
    a = parser.parse_args(argv[1:])
    options = Options(gen_length=a.gen_length, block_length=a.block_length, steps=a.steps, policy=a.policy,
                      tau=a.tau, factor=a.factor, delta=a.delta, cache=a.cache, eotp=a.eotp)
    result = decode(LLaDA.load(a.checkpoint), a.tokens, options)
    print("answer", result["answer"])
    print(f"nfe {result['nfe']}  positions {result['positions']}  useful {result['useful_tokens']}  "
          f"min_gap {result['min_gap']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
