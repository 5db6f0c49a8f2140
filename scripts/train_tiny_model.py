#!/usr/bin/env python3
"""Train the tiny default model: a LLaDA-architecture masked-diffusion LM on the task suite.

    l2pd tasks export --split train --count 200000 --out /tmp/train.jsonl
    python3 scripts/train_tiny_model.py --tasks /tmp/train.jsonl --out runs/tiny --minutes 120

Objective (LLaDA supervised fine-tuning): the chat-formatted prompt stays clean; the answer,
followed by <|eot_id|> and <|endoftext|> padding up to the canvas, is masked with a ratio t
drawn per sample; cross-entropy on masked positions weighted by 1/t. Decision: the answer
tokens and the padding are normalised separately (each by its own length, padding at half
weight), so the padding of a 1024-token canvas does not drown the answer's signal in a model
this small. Canvas lengths are mixed per batch (64 .. 1024, short ones more often, every batch
the same token budget), so padding at far positions is learned too.

The script checkpoints every few minutes to
OUT/train_state.pt and resumes from it; `--minutes` is the total budget across resumes.
Exports the Hugging Face LLaDA layout to OUT/model: config.json, model.safetensors (F32),
tokenizer.json, tokenizer_config.json. Runs on CUDA when available.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_tokenizer import EOS, EOT, MASK, chat, train_tokenizer  # noqa: E402

SIZE_PRESETS = {
    "tiny": dict(d_model=128, n_layers=4, n_heads=4, n_kv_heads=2, mlp_hidden_size=384, vocab_size=400, embedding_size=448),
    "small": dict(d_model=192, n_layers=6, n_heads=6, n_kv_heads=2, mlp_hidden_size=512, vocab_size=400, embedding_size=448),
}
CANVASES = [64, 128, 256, 512, 1024]
CANVAS_WEIGHTS = [4, 3, 2, 1, 1]  # batches per canvas length (each batch has the same token budget)
ROPE_THETA = 500000.0
EPS = 1e-5


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * self.weight


class Block(nn.Module):
    def __init__(self, s):
        super().__init__()
        d, h, kv, f = s["d_model"], s["n_heads"], s["n_kv_heads"], s["mlp_hidden_size"]
        self.h, self.kv, self.hd = h, kv, d // h
        self.attn_norm, self.ff_norm = RMSNorm(d), RMSNorm(d)
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, kv * self.hd, bias=False)
        self.v_proj = nn.Linear(d, kv * self.hd, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.ff_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.ff_out = nn.Linear(f, d, bias=False)

    def forward(self, x, cos, sin):
        b, n, _ = x.shape
        a = self.attn_norm(x)
        q = self.q_proj(a).view(b, n, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(a).view(b, n, self.kv, self.hd).transpose(1, 2)
        v = self.v_proj(a).view(b, n, self.kv, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        rep = self.h // self.kv
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        o = F.scaled_dot_product_attention(q, k, v)  # bidirectional: no mask
        x = x + self.attn_out(o.transpose(1, 2).reshape(b, n, -1))
        m = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(m)) * self.up_proj(m))


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class LLaDA(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s
        self.wte = nn.Embedding(s["embedding_size"], s["d_model"])
        self.blocks = nn.ModuleList([Block(s) for _ in range(s["n_layers"])])
        self.ln_f = RMSNorm(s["d_model"])
        self.ff_out = nn.Linear(s["d_model"], s["embedding_size"], bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
        hd = s["d_model"] // s["n_heads"]
        self.register_buffer("inv_freq", ROPE_THETA ** (-torch.arange(0, hd, 2).float() / hd), persistent=False)

    def forward(self, tokens):
        n = tokens.shape[1]
        freqs = torch.outer(torch.arange(n, device=tokens.device).float(), self.inv_freq)
        angles = torch.cat([freqs, freqs], dim=-1)
        cos, sin = angles.cos(), angles.sin()
        x = self.wte(tokens)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.ff_out(self.ln_f(x))

    def hf_state(self):
        out = {"model.transformer.wte.weight": self.wte.weight, "model.transformer.ln_f.weight": self.ln_f.weight,
               "model.transformer.ff_out.weight": self.ff_out.weight}
        for i, b in enumerate(self.blocks):
            for name in ["attn_norm", "q_proj", "k_proj", "v_proj", "attn_out", "ff_norm", "ff_proj", "up_proj", "ff_out"]:
                out[f"model.transformer.blocks.{i}.{name}.weight"] = getattr(b, name).weight
        return {k: v.detach().float().cpu().contiguous() for k, v in out.items()}


def config_json(s, tok):
    return {
        "activation_type": "silu", "alibi": False, "alibi_bias_max": 8.0, "architectures": ["LLaDAModelLM"],
        "attention_dropout": 0.0, "attention_layer_norm": False, "attention_layer_norm_with_affine": True,
        "bias_for_layer_norm": False, "block_group_size": 1, "block_type": "llama", "d_model": s["d_model"],
        "embedding_dropout": 0.0, "embedding_size": s["embedding_size"], "eos_token_id": tok.token_to_id(EOS),
        "flash_attention": False, "include_bias": False, "include_qkv_bias": False, "init_device": "meta",
        "init_fn": "mitchell", "init_std": 0.02, "input_emb_norm": False, "layer_norm_type": "rms",
        "layer_norm_with_affine": True, "mask_token_id": tok.token_to_id(MASK), "max_sequence_length": 2048,
        "mlp_hidden_size": s["mlp_hidden_size"], "mlp_ratio": 4, "model_type": "llada", "multi_query_attention": None,
        "n_heads": s["n_heads"], "n_kv_heads": s["n_kv_heads"], "n_layers": s["n_layers"],
        "pad_token_id": tok.token_to_id(EOS), "precision": "amp_bf16", "residual_dropout": 0.0,
        "rms_norm_eps": EPS, "rope": True, "rope_full_precision": True, "rope_theta": ROPE_THETA,
        "scale_logits": False, "use_cache": False, "vocab_size": tok.get_vocab_size(), "weight_tying": False,
    }


def export(model, tok, directory, meta):
    os.makedirs(directory, exist_ok=True)
    save_file(model.hf_state(), os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config_json(model.s, tok), f, indent=2, sort_keys=True)
    tok.save(os.path.join(directory, "tokenizer.json"))
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|startoftext|>", "eos_token": EOS, "mask_token": MASK, "model_max_length": 2048,
                   "tokenizer_class": "PreTrainedTokenizerFast", "training": meta}, f, indent=2)


def load_examples(path, tok, eot_id):
    examples = []
    with open(path) as f:
        for line in f:
            e = json.loads(line)
            prompt = tok.encode(chat(e["prompt"]), add_special_tokens=False).ids
            answer = tok.encode(e["answer"], add_special_tokens=False).ids + [eot_id]
            examples.append((prompt, answer))
    return examples


def make_batch(examples, rng, canvas, eos_id, mask_id, tokens_per_batch):
    fitting = [e for e in examples if len(e[1]) < canvas]
    rows = [fitting[rng.randrange(len(fitting))] for _ in range(max(1, tokens_per_batch // (canvas + 64)))]
    width = max(len(p) for p, _ in rows) + canvas
    x = torch.full((len(rows), width), eos_id, dtype=torch.long)
    answer_region = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (p, a) in enumerate(rows):
        x[i, : len(p)] = torch.tensor(p)
        x[i, len(p): len(p) + len(a)] = torch.tensor(a)
        answer_region[i, len(p):] = True
    content = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (p, a) in enumerate(rows):
        content[i, len(p): len(p) + len(a)] = True
    t = torch.rand(len(rows), 1) * 0.98 + 0.02
    masked = (torch.rand(x.shape) < t) & answer_region
    noisy = torch.where(masked, torch.full_like(x, mask_id), x)
    return x, noisy, masked, t, content, answer_region & ~content


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", required=True, help="JSONL from `l2pd tasks export --split train`")
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=120, help="total training time across resumes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--tokens-per-batch", type=int, default=12288)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--size", choices=sorted(SIZE_PRESETS), default="tiny", help="model size preset")
    ap.add_argument("--tokenizer", help="reuse this tokenizer.json instead of training one (keeps token ids stable)")
    args = ap.parse_args()
    SIZES = SIZE_PRESETS[args.size]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    os.makedirs(args.out, exist_ok=True)
    state_path = os.path.join(args.out, "train_state.pt")
    tok_path = os.path.join(args.out, "tokenizer.json")

    if args.tokenizer and not os.path.exists(tok_path):
        import shutil
        shutil.copyfile(args.tokenizer, tok_path)
    if os.path.exists(tok_path):
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(tok_path)
    else:
        with open(args.tasks) as f:
            texts = [chat(e["prompt"]) + e["answer"] for e in map(json.loads, f)]
        tok = train_tokenizer(texts, SIZES["vocab_size"])
        tok.save(tok_path)
    sizes = dict(SIZES, vocab_size=tok.get_vocab_size())
    assert sizes["embedding_size"] >= sizes["vocab_size"]
    eos_id, mask_id, eot_id = tok.token_to_id(EOS), tok.token_to_id(MASK), tok.token_to_id(EOT)
    examples = load_examples(args.tasks, tok, eot_id)
    print(f"{len(examples)} examples, vocab {tok.get_vocab_size()}, device {device}", flush=True)

    torch.manual_seed(args.seed)
    model = LLaDA(sizes).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    step, elapsed = 0, 0.0
    rng = random.Random(args.seed)
    if os.path.exists(state_path):
        st = torch.load(state_path, map_location=device, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, elapsed = st["step"], st["elapsed"]
        rng.setstate(st["rng"])
        print(f"resumed at step {step}, {elapsed / 60:.1f} min", flush=True)
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters", flush=True)

    budget = args.minutes * 60
    start, last_save, running, seen = time.time() - elapsed, time.time(), None, 0
    session_start = time.time()
    while True:
        elapsed = time.time() - start
        if elapsed >= budget:
            break
        frac = elapsed / budget
        lr = args.lr * min(1.0, (step + 1) / 300) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        canvas = rng.choices(CANVASES, weights=CANVAS_WEIGHTS)[0]
        x, noisy, masked, t, content, pad = make_batch(examples, rng, canvas, eos_id, mask_id, args.tokens_per_batch)
        x, noisy, masked, t, content, pad = (v.to(device) for v in (x, noisy, masked, t, content, pad))
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(noisy).float()
        ce = F.cross_entropy(logits.view(-1, logits.shape[-1]), x.view(-1), reduction="none").view(x.shape)
        weighted = ce * masked / t
        answer_loss = (weighted * content).sum(1) / content.sum(1).clamp(min=1)
        pad_loss = (weighted * pad).sum(1) / pad.sum(1).clamp(min=1)
        loss = (answer_loss + 0.5 * pad_loss).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += x.numel()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0:
            print(f"step {step}  {elapsed / 60:6.1f} min  loss {running:.4f}  lr {lr:.2e}  "
                  f"{seen / max(time.time() - session_start, 1):.0f} tok/s", flush=True)
        if time.time() - last_save > 300:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                        "elapsed": time.time() - start, "rng": rng.getstate()}, state_path)
            export(model, tok, os.path.join(args.out, "model"), {"step": step, "minutes": round(elapsed / 60, 1)})
            last_save = time.time()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                "elapsed": time.time() - start, "rng": rng.getstate()}, state_path)
    export(model, tok, os.path.join(args.out, "model"), {"step": step, "minutes": round(elapsed / 60, 1), "seed": args.seed})
    print(f"done: step {step}, exported {os.path.join(args.out, 'model')}", flush=True)


if __name__ == "__main__":
    main()
