#!/usr/bin/env python3
"""PyTorch's forward pass of the random LLaDA shape `l2pd bench forward` times, for comparison.

    python3 scripts/torch_forward.py --length 512 [--dtype f32|bf16] [--threads 2]

Same shape as `l2pd bench forward`'s random model (d_model 1024, 8 layers, 16 heads with as
many K/V heads, MLP 2816, vocabulary 8192): every layer over the whole canvas, then the final
norm and the output head on the last --reads positions. Random weights, inference mode, the
median of --repetitions passes after one warm-up. Prints one JSON object. Needs PyTorch; the
product and CI never run it (`scripts/compare_forward.sh` runs both sides interleaved).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_tiny_model import LLaDA  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--reads", type=int, default=32)
    ap.add_argument("--d-model", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--mlp", type=int, default=2816)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--repetitions", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = dict(d_model=args.d_model, n_layers=args.layers, n_heads=args.heads, n_kv_heads=args.heads,
                 mlp_hidden_size=args.mlp, vocab_size=args.vocab, embedding_size=args.vocab)
    model = LLaDA(shape).eval()
    dtype = torch.float32 if args.dtype == "f32" else torch.bfloat16
    model = model.to(dtype)
    tokens = (torch.arange(args.length) * 7919 % args.vocab).unsqueeze(0)

    def forward():
        n = tokens.shape[1]
        freqs = torch.outer(torch.arange(n).float(), model.inv_freq)
        angles = torch.cat([freqs, freqs], dim=-1)
        cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
        x = model.wte(tokens)
        for block in model.blocks:
            x = block(x, cos, sin)
        return model.ff_out(model.ln_f(x[:, -args.reads:]))

    with torch.inference_mode():
        forward()
        times = []
        for _ in range(args.repetitions):
            start = time.perf_counter()
            forward()
            times.append(time.perf_counter() - start)
    times.sort()
    print(json.dumps({"torch": torch.__version__, "dtype": args.dtype, "threads": args.threads, "length": args.length,
                      "forwardSeconds": times[len(times) // 2], "minSeconds": times[0], "maxSeconds": times[-1],
                      "blas": torch.backends.mkl.is_available() and "mkl" or "other",
                      "cpuCapability": torch.backends.cpu.get_cpu_capability()}))


if __name__ == "__main__":
    main()
