#!/usr/bin/env python3
"""Write a LLaDA-shaped checkpoint with random weights in the Hugging Face layout.

The output is what a real LLaDA checkpoint looks like on disk: `config.json`, BF16 tensors in
`model-0000N-of-0000M.safetensors` shards listed by `model.safetensors.index.json`, and a
tokenizer (the embedded default model's, so prompts encode; answers of a random model are
noise). The default shape is GSAI-ML/LLaDA-8B-Instruct's (about 8B parameters, 16 GB).

Tensors are generated and written one at a time (the safetensors header is computed from the
shapes before any data), so memory stays at one tensor's worth whatever the model's size.
Needs NumPy only.

    python3 scripts/make_random_checkpoint.py DIR                  # LLaDA-8B shape
    python3 scripts/make_random_checkpoint.py DIR --d-model 512 --layers 4 --mlp 1536 --heads 8
"""
import argparse
import json
import os
import shutil
import struct
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(REPO, "Sources", "L2PDDefaultModel", "Model")


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("directory")
    p.add_argument("--d-model", type=int, default=4096)
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=None, help="default: --heads")
    p.add_argument("--mlp", type=int, default=12288, help="MLP hidden size")
    p.add_argument("--vocab", type=int, default=126464, help="vocabulary and embedding size")
    p.add_argument("--mask-token", type=int, default=126336)
    p.add_argument("--eos-token", type=int, default=126081)
    p.add_argument("--max-sequence-length", type=int, default=4096)
    p.add_argument("--shard-gib", type=float, default=4.0, help="largest shard, GiB")
    p.add_argument("--std", type=float, default=0.02, help="standard deviation of the weights")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    a.kv_heads = a.kv_heads or a.heads
    for name in ("d_model", "layers", "heads", "kv_heads", "mlp", "vocab", "max_sequence_length"):
        if getattr(a, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if a.d_model % a.heads or (a.d_model // a.heads) % 2 or a.heads % a.kv_heads:
        p.error("--heads must divide --d-model into an even head size, and --kv-heads must divide --heads")
    if not (0 <= a.mask_token < a.vocab and 0 <= a.eos_token < a.vocab):
        p.error("--mask-token and --eos-token must be below --vocab")
    if a.shard_gib <= 0:
        p.error("--shard-gib must be positive")
    return a


def config(a):
    return {
        "architectures": ["LLaDAModelLM"], "model_type": "llada", "block_type": "llama", "activation_type": "silu",
        "d_model": a.d_model, "n_layers": a.layers, "n_heads": a.heads, "n_kv_heads": a.kv_heads,
        "mlp_hidden_size": a.mlp, "mlp_ratio": 4, "vocab_size": a.vocab, "embedding_size": a.vocab,
        "rope": True, "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "layer_norm_type": "rms", "alibi": False,
        "include_bias": False, "include_qkv_bias": False, "attention_layer_norm": False, "weight_tying": False,
        "mask_token_id": a.mask_token, "eos_token_id": a.eos_token, "pad_token_id": a.eos_token,
        "max_sequence_length": a.max_sequence_length, "torch_dtype": "bfloat16",
    }


def tensors(a):
    """(name, shape, kind) in checkpoint order; kind is 'weight' or 'norm'."""
    d, kv = a.d_model, a.kv_heads * (a.d_model // a.heads)
    yield "model.transformer.wte.weight", (a.vocab, d), "weight"
    for i in range(a.layers):
        p = f"model.transformer.blocks.{i}."
        yield p + "attn_norm.weight", (d,), "norm"
        yield p + "q_proj.weight", (d, d), "weight"
        yield p + "k_proj.weight", (kv, d), "weight"
        yield p + "v_proj.weight", (kv, d), "weight"
        yield p + "attn_out.weight", (d, d), "weight"
        yield p + "ff_norm.weight", (d,), "norm"
        yield p + "ff_proj.weight", (a.mlp, d), "weight"
        yield p + "up_proj.weight", (a.mlp, d), "weight"
        yield p + "ff_out.weight", (d, a.mlp), "weight"
    yield "model.transformer.ln_f.weight", (d,), "norm"
    yield "model.transformer.ff_out.weight", (a.vocab, d), "weight"


def to_bf16(x):
    """float32 array -> uint16 bfloat16 bits, rounded to nearest even."""
    bits = x.view(np.uint32)
    bits = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return (bits >> np.uint32(16)).astype("<u2")


def shards(a):
    """Split the tensors into shards of at most --shard-gib (a larger tensor gets its own)."""
    limit = int(a.shard_gib * (1 << 30))
    groups, current, size = [], [], 0
    for name, shape, kind in tensors(a):
        nbytes = 2 * int(np.prod(shape))
        if current and size + nbytes > limit:
            groups.append(current)
            current, size = [], 0
        current.append((name, shape, kind))
        size += nbytes
    if current:
        groups.append(current)
    return groups


def write_shard(path, group, rng, a, progress):
    header, offset = {}, 0
    for name, shape, _ in group:
        nbytes = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name, shape, kind in group:
            rows = shape[0] if len(shape) == 2 else 1
            columns = shape[-1]
            step = max(1, (16 << 20) // columns)  # about 64 MB of float32 at a time
            for start in range(0, rows, step):
                count = min(step, rows - start)
                if kind == "norm":
                    block = np.ones(count * columns, dtype=np.float32)
                else:
                    block = rng.standard_normal(count * columns, dtype=np.float32)
                    block *= np.float32(a.std)
                f.write(to_bf16(block).tobytes())
                progress(2 * count * columns)
    os.replace(tmp, path)


def main():
    a = parse()
    os.makedirs(a.directory, exist_ok=True)
    groups = shards(a)
    total = sum(2 * int(np.prod(s)) for g in groups for _, s, _ in g)
    free = shutil.disk_usage(a.directory).free
    if free < total * 1.05:
        sys.exit(f"{a.directory}: needs {total / 2**30:.1f} GiB, only {free / 2**30:.1f} GiB free")
    with open(os.path.join(a.directory, "config.json"), "w") as f:
        json.dump(config(a), f, indent=2, sort_keys=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(DEFAULT_MODEL, name), os.path.join(a.directory, name))

    rng = np.random.default_rng(a.seed)
    written, started, last = 0, time.time(), 0.0

    def progress(nbytes):
        nonlocal written, last
        written += nbytes
        now = time.time()
        if now - last >= 2 or written == total:
            last = now
            rate = written / max(now - started, 1e-9)
            eta = (total - written) / max(rate, 1)
            print(f"\rmake_random_checkpoint: {written / 2**30:6.1f} / {total / 2**30:.1f} GiB, "
                  f"{rate / 2**20:5.0f} MiB/s, ETA {eta:4.0f} s", end="", file=sys.stderr, flush=True)

    weight_map = {}
    names = [f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))]
    for file_name, group in zip(names, groups):
        write_shard(os.path.join(a.directory, file_name), group, rng, a, progress)
        for name, _, _ in group:
            weight_map[name] = file_name
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    with open(os.path.join(a.directory, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
    print(f"\nmake_random_checkpoint: wrote {total / 2**30:.2f} GiB in {len(groups)} shards to {a.directory} "
          f"in {time.time() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
