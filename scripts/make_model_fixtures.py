#!/usr/bin/env python3
"""Writes the tiny LLaDA checkpoints and golden logits used by Tests/L2PDModelTests.

    python3 scripts/make_model_fixtures.py [OUTPUT_DIR]

Default output: Tests/L2PDModelTests/Fixtures/. Deterministic (fixed seed); needs NumPy and
safetensors only. Golden values come from scripts/llada_reference.py (float64), run on the
weights as read back from each written checkpoint.

Checkpoints (each a folder with config.json, weights and golden.json):
    tiny-llada          F32, model.safetensors; d_model 64, 4 heads, 2 K/V heads, 3 layers,
                        mlp 96, vocab_size 300, embedding_size 320, mask 299, eos 298
    tiny-llada-bf16     the same weights rounded to BF16 (round to nearest even)
    tiny-llada-f16      the same weights rounded to F16
    tiny-llada-sharded  F32, two shards + model.safetensors.index.json (HF format)
    tiny-llada-tied     F32, weight_tying true, no model.transformer.ff_out.weight
The variants keep every size of tiny-llada except n_layers, which is smaller so the Fixtures
folder stays under 2 MB: 2 for tiny-llada-sharded (block 0 in the first shard, block 1 in the
second), 1 for the others. Their weights are the first layers of tiny-llada's (rounded for
BF16/F16), with the same embedding, ln_f and head.

golden.json:
{
  "checkpoint": "tiny-llada",
  "weights_dtype": "F32" | "BF16" | "F16",
  "logits_columns": 320,            # = embedding_size: logits are hidden @ head.T, one column
                                    #   per head row; columns >= vocab_size are included
  "significant_digits": 7,          # every float is rounded to this many digits
  "cases": [
    {"name": "full_11", "kind": "full",
     "tokens": [11 ints], "logits": [[320 floats] x 11]},
    {"name": "full_23", "kind": "full", "tokens": [23 ints], "logits": [[320] x 23]},
    {"name": "split_1", "kind": "split", "split_layer": 1,
     "tokens": [11 ints],
     "hidden": [[64 floats] x 11],  # residual stream after embedding + layers [0, 1)
     "logits": [[320] x 11]},       # layers [1, n) + ln_f + head on "hidden" (= full forward)
    {"name": "dual_cache", "kind": "cached_step",
     "cache_tokens": [40 ints],     # T0: full pass, keep every layer's K/V (post-rope K)
     "tokens": [40 ints],           # T1: T0 with some positions inside [start, end) changed
     "start": 8, "end": 16,         # recompute positions [start, end) of T1 only, rope
                                    #   positions start..end-1, writing their fresh K/V over the
                                    #   cached rows and attending over all 40 positions
     "logits": [[320] x 8]},        # logits of positions start..end-1
    {"name": "prefix_cache", "kind": "cached_step", ..., "start": 8, "end": 40,
     "logits": [[320] x 32]}
  ]
}
tiny-llada has all five cases; the variants have full_11 only.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llada_reference import LLaDA, read_checkpoint  # noqa: E402

SEED = 20250925
DIGITS = 7
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "Tests", "L2PDModelTests", "Fixtures")

SIZES = dict(d_model=64, n_heads=4, n_kv_heads=2, n_layers=3, mlp_hidden_size=96,
             vocab_size=300, embedding_size=320)
MASK, EOS = 299, 298


def llada_config(n_layers: int, weight_tying: bool) -> dict:
    """Same keys as GSAI-ML/LLaDA-8B-Instruct's config.json, with tiny sizes."""
    return {
        "activation_type": "silu",
        "alibi": False,
        "alibi_bias_max": 8.0,
        "architectures": ["LLaDAModelLM"],
        "attention_dropout": 0.0,
        "attention_layer_norm": False,
        "attention_layer_norm_with_affine": True,
        "auto_map": {
            "AutoConfig": "configuration_llada.LLaDAConfig",
            "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
            "AutoModel": "modeling_llada.LLaDAModelLM",
        },
        "bias_for_layer_norm": False,
        "block_group_size": 1,
        "block_type": "llama",
        "d_model": SIZES["d_model"],
        "embedding_dropout": 0.0,
        "embedding_size": SIZES["embedding_size"],
        "eos_token_id": EOS,
        "flash_attention": False,
        "include_bias": False,
        "include_qkv_bias": False,
        "init_cutoff_factor": None,
        "init_device": "meta",
        "init_fn": "mitchell",
        "init_std": 0.02,
        "input_emb_norm": False,
        "layer_norm_type": "rms",
        "layer_norm_with_affine": True,
        "mask_token_id": MASK,
        "max_sequence_length": 256,
        "mlp_hidden_size": SIZES["mlp_hidden_size"],
        "mlp_ratio": 4,
        "model_type": "llada",
        "multi_query_attention": None,
        "n_heads": SIZES["n_heads"],
        "n_kv_heads": SIZES["n_kv_heads"],
        "n_layers": n_layers,
        "pad_token_id": EOS,
        "precision": "amp_bf16",
        "residual_dropout": 0.0,
        "rms_norm_eps": 1e-05,
        "rope": True,
        "rope_full_precision": True,
        "rope_theta": 500000.0,
        "scale_logits": False,
        "transformers_version": "4.46.3",
        "use_cache": False,
        "vocab_size": SIZES["vocab_size"],
        "weight_tying": weight_tying,
    }


def random_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    d, f, e = SIZES["d_model"], SIZES["mlp_hidden_size"], SIZES["embedding_size"]
    kv = SIZES["n_kv_heads"] * d // SIZES["n_heads"]

    def normal(shape, std):
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    def norm(n):
        return (1.0 + rng.normal(0.0, 0.1, size=n)).astype(np.float32)

    w = {"model.transformer.wte.weight": normal((e, d), 0.1)}
    for i in range(SIZES["n_layers"]):
        p = f"model.transformer.blocks.{i}."
        w[p + "attn_norm.weight"] = norm(d)
        w[p + "q_proj.weight"] = normal((d, d), 0.15)
        w[p + "k_proj.weight"] = normal((kv, d), 0.15)
        w[p + "v_proj.weight"] = normal((kv, d), 0.15)
        w[p + "attn_out.weight"] = normal((d, d), 0.1)
        w[p + "ff_norm.weight"] = norm(d)
        w[p + "ff_proj.weight"] = normal((f, d), 0.12)
        w[p + "up_proj.weight"] = normal((f, d), 0.12)
        w[p + "ff_out.weight"] = normal((d, f), 0.1)
    w["model.transformer.ln_f.weight"] = norm(d)
    w["model.transformer.ff_out.weight"] = normal((e, d), 0.1)
    return w


def first_layers(w: dict[str, np.ndarray], n: int, tied: bool) -> dict[str, np.ndarray]:
    keep = {}
    for name, t in w.items():
        if name.startswith("model.transformer.blocks."):
            if int(name.split(".")[3]) >= n:
                continue
        elif name == "model.transformer.ff_out.weight" and tied:
            continue
        keep[name] = t
    return keep


# ---------------------------------------------------------------- writing weights

def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even (no NaNs here)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_bf16_safetensors(path: str, w: dict[str, np.ndarray]) -> None:
    """Minimal safetensors writer for BF16 (NumPy has no bfloat16 dtype)."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(w):
        raw = to_bf16_bits(w[name]).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(w[name].shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def write_checkpoint(directory: str, config: dict, w: dict[str, np.ndarray], dtype: str,
                     shards: int = 1) -> None:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    meta = {"format": "pt"}
    if dtype == "BF16":
        write_bf16_safetensors(os.path.join(directory, "model.safetensors"), w)
        return
    np_dtype = {"F32": np.float32, "F16": np.float16}[dtype]
    w = {k: np.ascontiguousarray(v.astype(np_dtype)) for k, v in w.items()}
    if shards == 1:
        save_file(w, os.path.join(directory, "model.safetensors"), metadata=meta)
        return
    # Shard 1: embedding and block 0; shard 2: everything else.
    names = sorted(w)
    first = [n for n in names if n == "model.transformer.wte.weight"
             or n.startswith("model.transformer.blocks.0.")]
    groups = [first, [n for n in names if n not in first]]
    assert shards == 2 and all(groups)
    weight_map = {}
    for i, group in enumerate(groups):
        file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: w[n] for n in group}, os.path.join(directory, file), metadata=meta)
        weight_map.update({n: file for n in group})
    index = {"metadata": {"total_size": int(sum(t.nbytes for t in w.values()))},
             "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------- golden cases

def token_sets(rng: np.random.Generator) -> dict[str, np.ndarray]:
    def words(n):
        return rng.integers(0, EOS, size=n)

    seq11 = words(11)
    seq11[[3, 4, 9]] = MASK
    seq23 = words(23)
    seq23[[2, 5, 6, 11, 12, 13, 17, 20]] = MASK
    seq23[22] = EOS
    # A decoding canvas: prompt [0, 8), current block [8, 16), suffix [16, 40).
    t0 = np.full(40, MASK)
    t0[:8] = words(8)
    t0[[9, 12, 20, 33]] = words(4)
    t0[[38, 39]] = EOS
    t1 = t0.copy()
    t1[[8, 11, 14]] = words(3)  # three positions of the block committed since the cache
    return {"seq11": seq11, "seq23": seq23, "t0": t0, "t1": t1}


def rounded(a: np.ndarray) -> list:
    return [[float(f"{x:.{DIGITS}g}") for x in row] for row in np.atleast_2d(a)]


def golden_cases(model: LLaDA, toks: dict[str, np.ndarray], full: bool) -> list[dict]:
    cases = [{"name": "full_11", "kind": "full", "tokens": toks["seq11"].tolist(),
              "logits": model.forward(toks["seq11"])}]
    if not full:
        return cases
    cases.append({"name": "full_23", "kind": "full", "tokens": toks["seq23"].tolist(),
                  "logits": model.forward(toks["seq23"])})
    hidden = model.run_layers(model.embed(toks["seq11"]), 0, 1)
    cases.append({"name": "split_1", "kind": "split", "split_layer": 1,
                  "tokens": toks["seq11"].tolist(), "hidden": hidden,
                  "logits": model.head(model.run_layers(hidden, 1, model.n_layers))})
    _, cache = model.forward_with_cache(toks["t0"])
    for name, s, e in (("dual_cache", 8, 16), ("prefix_cache", 8, 40)):
        logits, _ = model.cached_step(toks["t1"], cache, s, e)
        cases.append({"name": name, "kind": "cached_step", "cache_tokens": toks["t0"].tolist(),
                      "tokens": toks["t1"].tolist(), "start": s, "end": e, "logits": logits})
    return cases


def write_golden(directory: str, name: str, dtype: str, model: LLaDA, cases: list[dict]):
    doc = {"checkpoint": name, "weights_dtype": dtype,
           "logits_columns": int(model.lm_head.shape[0]), "significant_digits": DIGITS,
           "cases": []}
    for case in cases:
        doc["cases"].append({k: rounded(v) if isinstance(v, np.ndarray) else v
                             for k, v in case.items()})
    # One matrix row per line: readable diffs, compact file.
    lines = ["{"]
    for key in ("checkpoint", "weights_dtype", "logits_columns", "significant_digits"):
        lines.append(f"  {json.dumps(key)}: {json.dumps(doc[key])},")
    lines.append('  "cases": [')
    for ci, case in enumerate(doc["cases"]):
        lines.append("    {")
        items = list(case.items())
        for ki, (k, v) in enumerate(items):
            comma = "," if ki < len(items) - 1 else ""
            if isinstance(v, list) and v and isinstance(v[0], list):
                rows = [json.dumps(r, separators=(",", ":")) for r in v]
                lines.append(f"      {json.dumps(k)}: [")
                lines += [f"        {r}," for r in rows[:-1]] + [f"        {rows[-1]}"]
                lines.append(f"      ]{comma}")
            else:
                lines.append(f"      {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}{comma}")
        lines.append("    }" + ("," if ci < len(doc["cases"]) - 1 else ""))
    lines += ["  ]", "}"]
    with open(os.path.join(directory, "golden.json"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(directory, "golden.json")) as f:  # parses back
        json.load(f)


# ---------------------------------------------------------------- sanity checks of the reference

def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"reference self-check failed: {what}")


def self_checks(model: LLaDA, toks: dict[str, np.ndarray]) -> None:
    # RoPE in concatenated (not interleaved) form: rope(e_0, p) = cos(p) e_0 + sin(p) e_{h/2}.
    h = model.head_dim
    x = np.zeros((1, 1, h))
    x[0, 0, 0] = 1.0
    r = model.rope(x, np.array([3]))[0, 0]
    expect = np.zeros(h)
    expect[0], expect[h // 2] = np.cos(3.0), np.sin(3.0)
    check(np.allclose(r, expect, atol=1e-15), "rope rotate-half layout")

    # Stage split equals the full forward, at every split point.
    for tokens in (toks["seq11"], toks["seq23"]):
        full = model.forward(tokens)
        for k in range(model.n_layers + 1):
            h1 = model.run_layers(model.embed(tokens), 0, k)
            split = model.head(model.run_layers(h1, k, model.n_layers))
            check(np.allclose(split, full, rtol=0, atol=1e-12), f"split at layer {k}")

    # The cache-building pass gives the same logits; cached steps with unchanged tokens
    # reproduce the full forward on the recomputed positions.
    full0 = model.forward(toks["t0"])
    logits0, cache = model.forward_with_cache(toks["t0"])
    check(np.allclose(logits0, full0, rtol=0, atol=1e-12), "forward_with_cache logits")
    for s, e in ((8, 16), (8, 40), (0, 40), (39, 40)):
        step, new_cache = model.cached_step(toks["t0"], cache, s, e)
        check(np.allclose(step, full0[s:e], rtol=0, atol=1e-12), f"cached step [{s},{e}) on T0")
        for (k0, v0), (k1, v1) in zip(cache, new_cache):
            check(np.allclose(k0, k1, atol=1e-12) and np.allclose(v0, v1, atol=1e-12),
                  "cache rows after an unchanged step")

    # With T1 the stale K/V matter: the cached steps must differ from a full forward on T1
    # (otherwise the golden would not tell a cached step from an uncached one).
    full1 = model.forward(toks["t1"])
    for s, e in ((8, 16), (8, 40)):
        step, _ = model.cached_step(toks["t1"], cache, s, e)
        gap = np.abs(step - full1[s:e]).max()
        check(gap > 1e-3, f"cached step [{s},{e}) on T1 differs from full forward ({gap:.2e})")
        check(np.abs(step - full0[s:e]).max() > 1e-3, f"cached step [{s},{e}) sees T1")
    # Prefix cache: positions before the changed ones are stale, later ones fresh; recomputing
    # from 0 is exact.
    step, _ = model.cached_step(toks["t1"], cache, 0, 40)
    check(np.allclose(step, full1, rtol=0, atol=1e-12), "cached step over everything")

    # Grouped K/V: expanding K/V weights to one head per query head (query head j takes kv
    # head j // group) must give the same logits as the grouped model.
    group = model.n_heads // model.n_kv_heads
    t = dict(model.t)
    for i in range(model.n_layers):
        for p in ("k_proj", "v_proj"):
            name = f"model.transformer.blocks.{i}.{p}.weight"
            heads = t[name].reshape(model.n_kv_heads, h, -1)
            t[name] = np.repeat(heads, group, axis=0).reshape(model.d_model, -1)
    mha = LLaDA(dict(model.config, n_kv_heads=model.n_heads), t)
    check(np.allclose(mha.forward(toks["seq23"]), model.forward(toks["seq23"]), atol=1e-12),
          "grouped K/V equals expanded multi-head")

    # Logits are not flat.
    check(full0.std(axis=-1).min() > 0.2, "logits spread")


# ---------------------------------------------------------------- main

def main() -> int:
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    rng = np.random.default_rng(SEED)
    master = random_weights(rng)
    toks = token_sets(rng)

    variants = [  # (folder, dtype, shards, tied, layers, all cases)
        ("tiny-llada", "F32", 1, False, SIZES["n_layers"], True),
        ("tiny-llada-bf16", "BF16", 1, False, 1, False),
        ("tiny-llada-f16", "F16", 1, False, 1, False),
        ("tiny-llada-sharded", "F32", 2, False, 2, False),
        ("tiny-llada-tied", "F32", 1, True, 1, False),
    ]
    for folder, dtype, shards, tied, layers, full in variants:
        directory = os.path.join(out, folder)
        if os.path.isdir(directory):
            shutil.rmtree(directory)
        w = first_layers(master, layers, tied)
        write_checkpoint(directory, llada_config(layers, tied), w, dtype, shards)

        # The golden comes from the weights as read back from disk; check the round trip.
        config, stored = read_checkpoint(directory)
        check(sorted(stored) == sorted(w), f"{folder}: tensor names")
        for name, t in w.items():
            want = {"F32": t, "F16": t.astype(np.float16).astype(np.float32),
                    "BF16": (to_bf16_bits(t).astype(np.uint32) << 16).view(np.float32)}[dtype]
            check(np.array_equal(stored[name], want), f"{folder}: {name} round trip")
        model = LLaDA(config, stored)
        if full:
            self_checks(model, toks)
            f32 = LLaDA(config, stored, dtype=np.float32).forward(toks["seq23"])
            print(f"float32 vs float64 reference, max |logit diff|: "
                  f"{np.abs(f32 - model.forward(toks['seq23'])).max():.2e}")
        write_golden(directory, folder, dtype, model, golden_cases(model, toks, full))

    total = 0
    for dirpath, _, files in sorted(os.walk(out)):
        for name in sorted(files):
            size = os.path.getsize(os.path.join(dirpath, name))
            total += size
            print(f"{size:>9}  {os.path.relpath(os.path.join(dirpath, name), out)}")
    print(f"{total:>9}  total")
    check(total < 2_000_000, "Fixtures folder under 2 MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
