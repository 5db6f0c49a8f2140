#!/usr/bin/env python3
"""Independent NumPy reference of the LLaDA forward pass (float64 by default).

Written from the architecture description in the project's reference document, not from
the Swift code. It exists to produce golden logits for the Swift tests; it is slow and
meant for tiny models only.

Model (LLaDA, a LLaMA-style encoder without causal mask):
    h = wte[tokens]
    per layer:  n = rms(h) * attn_norm
                q, k, v = n @ q_proj.T, n @ k_proj.T, n @ v_proj.T
                q, k = rope(q, positions), rope(k, positions)      (rotate-half form)
                h = h + attn_out(softmax(q k^T / sqrt(head_dim)) v)  (no mask, grouped K/V)
                m = rms(h) * ff_norm
                h = h + ff_out(silu(ff_proj(m)) * up_proj(m))
    logits = (rms(h) * ln_f) @ head.T    head = ff_out (LM head), or wte when weight_tying
Logits have `embedding_size` columns (the rows of the head matrix), not `vocab_size`.

API:
    model = LLaDA.load(checkpoint_dir)
    model.forward(tokens)                       -> logits [L, embedding_size]
    model.embed(tokens); model.run_layers(h, a, b); model.head(h)    (stage split)
    logits, cache = model.forward_with_cache(tokens)                  (cache[i] = (K, V))
    logits, cache = model.cached_step(tokens, cache, s, e)            (recompute [s, e) only)

Usage: python3 scripts/llada_reference.py CHECKPOINT_DIR TOKEN_ID [TOKEN_ID ...]
"""

from __future__ import annotations

import json
import os
import struct
import sys

import numpy as np
from safetensors import safe_open


# ---------------------------------------------------------------- checkpoint loading

def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """All tensors of one .safetensors file as float32 arrays.

    F32/F16/F64 go through the safetensors NumPy API. NumPy has no bfloat16, so BF16
    tensors are read as raw little-endian uint16 and shifted into the high half of a float32.
    """
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data_start = 8 + header_len
        out = {}
        plain = [k for k, v in header.items() if k != "__metadata__" and v["dtype"] != "BF16"]
        for name, info in header.items():
            if name == "__metadata__" or info["dtype"] != "BF16":
                continue
            begin, end = info["data_offsets"]
            f.seek(data_start + begin)
            raw = np.frombuffer(f.read(end - begin), dtype="<u2")
            out[name] = (raw.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])
    if plain:
        with safe_open(path, framework="numpy") as st:
            for name in plain:
                out[name] = st.get_tensor(name).astype(np.float32)
    return out


def read_checkpoint(directory: str) -> tuple[dict, dict[str, np.ndarray]]:
    """config.json plus every tensor, from model.safetensors or a sharded index."""
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    index_path = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    else:
        shards = ["model.safetensors"]
    tensors: dict[str, np.ndarray] = {}
    for shard in shards:
        tensors.update(read_safetensors(os.path.join(directory, shard)))
    return config, tensors


# ---------------------------------------------------------------- the model

def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def rotate_half(x: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


class LLaDA:
    def __init__(self, config: dict, tensors: dict[str, np.ndarray], dtype=np.float64):
        self.config = config
        self.dtype = dtype
        self.d_model = config["d_model"]
        self.n_heads = config["n_heads"]
        self.n_kv_heads = config.get("n_kv_heads") or self.n_heads
        self.n_layers = config["n_layers"]
        self.head_dim = self.d_model // self.n_heads
        self.eps = config["rms_norm_eps"]
        self.theta = config["rope_theta"]
        self.t = {name: np.asarray(w, dtype=dtype) for name, w in tensors.items()}
        if config.get("weight_tying", False):
            self.lm_head = self.t["model.transformer.wte.weight"]
        else:
            self.lm_head = self.t["model.transformer.ff_out.weight"]

    @classmethod
    def load(cls, directory: str, dtype=np.float64) -> "LLaDA":
        config, tensors = read_checkpoint(directory)
        return cls(config, tensors, dtype)

    def w(self, layer: int, name: str) -> np.ndarray:
        return self.t[f"model.transformer.blocks.{layer}.{name}.weight"]

    # rotary embedding, rotate-half form; positions are absolute indices in the sequence
    def rope(self, x: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """x: [heads, rows, head_dim]; positions: [rows]."""
        h = self.head_dim
        inv_freq = self.theta ** (-np.arange(0, h, 2, dtype=np.float64) / h)  # theta^(-2i/h)
        freqs = np.outer(positions.astype(np.float64), inv_freq)              # [rows, h/2]
        angles = np.concatenate([freqs, freqs], axis=-1)                       # [rows, h]
        cos, sin = np.cos(angles).astype(self.dtype), np.sin(angles).astype(self.dtype)
        return x * cos + rotate_half(x) * sin

    def qkv(self, layer: int, x: np.ndarray, positions: np.ndarray):
        """Post-rope q [n_heads, rows, hd], k and v [n_kv_heads, rows, hd]."""
        n = rms_norm(x, self.w(layer, "attn_norm"), self.eps)
        rows = x.shape[0]
        q = (n @ self.w(layer, "q_proj").T).reshape(rows, self.n_heads, self.head_dim)
        k = (n @ self.w(layer, "k_proj").T).reshape(rows, self.n_kv_heads, self.head_dim)
        v = (n @ self.w(layer, "v_proj").T).reshape(rows, self.n_kv_heads, self.head_dim)
        q, k, v = q.transpose(1, 0, 2), k.transpose(1, 0, 2), v.transpose(1, 0, 2)
        return self.rope(q, positions), self.rope(k, positions), v

    def attend(self, layer: int, x: np.ndarray, q, k_all, v_all) -> np.ndarray:
        """Residual + attention of queries q over all keys k_all/v_all, then residual + MLP."""
        group = self.n_heads // self.n_kv_heads
        k_all = np.repeat(k_all, group, axis=0)          # query head j uses kv head j // group
        v_all = np.repeat(v_all, group, axis=0)
        scores = q @ k_all.transpose(0, 2, 1) / np.sqrt(self.head_dim)  # [heads, rows, L]
        scores = scores - scores.max(axis=-1, keepdims=True)
        p = np.exp(scores)
        p = p / p.sum(axis=-1, keepdims=True)
        o = (p @ v_all).transpose(1, 0, 2).reshape(x.shape[0], self.d_model)
        h = x + o @ self.w(layer, "attn_out").T
        m = rms_norm(h, self.w(layer, "ff_norm"), self.eps)
        mlp = silu(m @ self.w(layer, "ff_proj").T) * (m @ self.w(layer, "up_proj").T)
        return h + mlp @ self.w(layer, "ff_out").T

    # ------------------------------------------------------------ stages

    def embed(self, tokens) -> np.ndarray:
        return self.t["model.transformer.wte.weight"][np.asarray(tokens)]

    def run_layers(self, h: np.ndarray, start: int, end: int) -> np.ndarray:
        """Layers [start, end) on hidden states h [L, d_model] of positions 0..L-1."""
        positions = np.arange(h.shape[0])
        for layer in range(start, end):
            q, k, v = self.qkv(layer, h, positions)
            h = self.attend(layer, h, q, k, v)
        return h

    def head(self, h: np.ndarray) -> np.ndarray:
        """Final norm and LM head: logits [rows, embedding_size]."""
        return rms_norm(h, self.t["model.transformer.ln_f.weight"], self.eps) @ self.lm_head.T

    def forward(self, tokens) -> np.ndarray:
        return self.head(self.run_layers(self.embed(tokens), 0, self.n_layers))

    # ------------------------------------------------------------ K/V cache

    def forward_with_cache(self, tokens):
        """Full pass; returns logits and per layer (K, V), K post-rope, [n_kv_heads, L, hd]."""
        h = self.embed(tokens)
        positions = np.arange(h.shape[0])
        cache = []
        for layer in range(self.n_layers):
            q, k, v = self.qkv(layer, h, positions)
            cache.append((k, v))
            h = self.attend(layer, h, q, k, v)
        return self.head(h), cache

    def cached_step(self, tokens, cache, start: int, end: int):
        """Recompute positions [start, end) of `tokens` only (rope positions start..end-1).

        Fresh K/V of [start, end) replace those rows in a copy of `cache`; every query attends
        over all L cached positions. Returns logits [end-start, embedding_size] and the
        updated cache. One block = Fast-dLLM dual cache; end = L = prefix cache.
        """
        tokens = np.asarray(tokens)
        assert len(tokens) == cache[0][0].shape[1] and 0 <= start < end <= len(tokens)
        h = self.embed(tokens[start:end])
        positions = np.arange(start, end)
        new_cache = []
        for layer in range(self.n_layers):
            q, k, v = self.qkv(layer, h, positions)
            k_all, v_all = cache[layer][0].copy(), cache[layer][1].copy()
            k_all[:, start:end], v_all[:, start:end] = k, v
            new_cache.append((k_all, v_all))
            h = self.attend(layer, h, q, k_all, v_all)
        return self.head(h), new_cache


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    model = LLaDA.load(argv[1])
    logits = model.forward([int(t) for t in argv[2:]])
    np.set_printoptions(precision=5, suppress=True, linewidth=120)
    print("logits shape", logits.shape)
    print("argmax", logits.argmax(axis=-1).tolist())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
