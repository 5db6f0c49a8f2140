#!/usr/bin/env python3
"""Train the tiny default model: a LLaDA-architecture masked-diffusion LM on the task suite.

    l2pd tasks export --split train --count 300000 --seed 11 --out /tmp/train.jsonl
    python3 scripts/train_tiny_model.py --tasks /tmp/train.jsonl --out training \\
        --init Sources/L2PDDefaultModel/Model --minutes 600

Run it again with the same --out to resume; --minutes is the total budget across resumes and
may be raised on a later run. On a shared machine run it niced in the background:
`nice -n 19 python3 scripts/train_tiny_model.py ... > training/run.log 2>&1 &`.

Objective (LLaDA supervised fine-tuning): the chat-formatted prompt stays clean; the answer,
followed by <|eot_id|> and <|endoftext|> padding up to the canvas, is masked with a ratio t
drawn per row; cross-entropy on masked positions weighted by 1/t. The answer tokens and the
padding are normalised separately (each by its own length, padding at half weight), so
padding does not drown the answer's signal in a model this small.

Canvases: most batches (1 - --long-share, three quarters by default) are short rows of similar
length (prompt + answer + <|eot_id|> with a few padding positions, in fixed widths), the rest
are 320 or 1088 wide so end-of-text padding far out is learned too (a 1088-wide batch costs
about 1.8x a short one and carries a tenth of its answer tokens; once the padding loss is low,
a smaller share buys answer tokens). Batch shapes come from a few fixed widths, so
`torch.compile` compiles each once (about 1.7x over eager on a 2-core CPU).

Learning rate: warm-up, then constant, then a cosine decay over the last --decay-share of the
budget (warmup-stable-decay), so a run can be extended while it is in its stable phase.

Starting point: --init DIR fine-tunes a Hugging Face LLaDA checkpoint (its tokenizer is kept,
so token ids stay stable); --grow-layers N inserts N new blocks that start as the identity
(zero output projections), spread evenly between the old ones. Without --init a --size preset
starts from random weights with a tokenizer trained on the tasks.

Checkpoints every --checkpoint-minutes to OUT/checkpoint.safetensors (F32 weights and AdamW
moments in BF16, small enough to commit) with OUT/checkpoint.json (step, minutes, tokens, the
sampler's state); OUT/log.csv gets a row every 50 steps; OUT/model holds the exported
Hugging Face layout (config.json, model.safetensors, tokenizer files) for `l2pd --model`.
Runs on CUDA when available.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import shutil
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_tokenizer import EOS, EOT, MASK, chat, train_tokenizer  # noqa: E402

SIZE_PRESETS = {
    "tiny": dict(d_model=128, n_layers=4, n_heads=4, n_kv_heads=2, mlp_hidden_size=384, vocab_size=400, embedding_size=448),
    "small": dict(d_model=192, n_layers=6, n_heads=6, n_kv_heads=2, mlp_hidden_size=512, vocab_size=400, embedding_size=448),
}
SHORT_WIDTHS = [48, 80, 104]  # prompt + answer + <|eot_id|> + at least MIN_PAD padding positions
LONG_WIDTHS = [320, 1088]
LONG_WEIGHTS = [2, 1]
MIN_PAD = 4
ROPE_THETA = 500000.0
EPS = 1e-5
BLOCK_WEIGHTS = ["attn_norm", "q_proj", "k_proj", "v_proj", "attn_out", "ff_norm", "ff_proj", "up_proj", "ff_out"]


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
            for name in BLOCK_WEIGHTS:
                out[f"model.transformer.blocks.{i}.{name}.weight"] = getattr(b, name).weight
        return {k: v.detach().float().cpu().contiguous() for k, v in out.items()}

    def load_hf_state(self, tensors, layer_map):
        """Copy a checkpoint's tensors in; layer_map[i] is the old layer new block i takes, or None."""
        with torch.no_grad():
            self.wte.weight.copy_(tensors["model.transformer.wte.weight"])
            self.ln_f.weight.copy_(tensors["model.transformer.ln_f.weight"])
            self.ff_out.weight.copy_(tensors["model.transformer.ff_out.weight"])
            for i, old in enumerate(layer_map):
                block = self.blocks[i]
                if old is None:  # a new block: the identity until it learns something
                    block.attn_out.weight.zero_()
                    block.ff_out.weight.zero_()
                    continue
                for name in BLOCK_WEIGHTS:
                    getattr(block, name).weight.copy_(tensors[f"model.transformer.blocks.{old}.{name}.weight"])


def grown_layer_map(old_layers, new_layers):
    """Old layers in order with `new_layers` identity blocks spread evenly after them."""
    layer_map, inserted = [], 0
    for old in range(old_layers):
        layer_map.append(old)
        while inserted < new_layers and (inserted + 1) * old_layers <= (old + 1) * new_layers:
            layer_map.append(None)
            inserted += 1
    return layer_map


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
    """(prompt ids, answer ids + <|eot_id|>, family index) per example, and the family names."""
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    families = sorted({e.get("family", "all") for e in rows})
    index = {name: i for i, name in enumerate(families)}
    prompts = tok.encode_batch([chat(e["prompt"]) for e in rows], add_special_tokens=False)
    answers = tok.encode_batch([e["answer"] for e in rows], add_special_tokens=False)
    return [(p.ids, a.ids + [eot_id], index[e.get("family", "all")]) for p, a, e in zip(prompts, answers, rows)], families


class Batches:
    """Fixed-shape batches: rows of similar length in short widths, or far-padded long rows."""

    def __init__(self, examples, tokens_per_batch, long_share=0.25):
        self.long_share = long_share
        self.short = {w: [] for w in SHORT_WIDTHS}
        self.all = examples
        for e in examples:
            need = len(e[0]) + len(e[1]) + MIN_PAD
            width = next((w for w in SHORT_WIDTHS if need <= w), None)
            if width is not None:
                self.short[width].append(e)
        self.short = {w: rows for w, rows in self.short.items() if rows}
        self.tokens_per_batch = tokens_per_batch
        dropped = len(examples) - sum(len(v) for v in self.short.values())
        print(f"short widths {[(w, len(v)) for w, v in self.short.items()]}, {dropped} examples only in long rows",
              flush=True)

    def shapes(self):
        return [(max(1, self.tokens_per_batch // w), w) for w in list(self.short) + LONG_WIDTHS]

    def draw(self, rng, eos_id, mask_id):
        if rng.random() < self.long_share:
            width = rng.choices(LONG_WIDTHS, weights=LONG_WEIGHTS)[0]
            pool = self.all
        else:
            widths = list(self.short)
            width = rng.choices(widths, weights=[len(self.short[w]) for w in widths])[0]
            pool = self.short[width]
        n_rows = max(1, self.tokens_per_batch // width)
        rows = [pool[rng.randrange(len(pool))] for _ in range(n_rows)]
        x = torch.full((n_rows, width), eos_id, dtype=torch.long)
        answer_region = torch.zeros((n_rows, width), dtype=torch.bool)
        content = torch.zeros((n_rows, width), dtype=torch.bool)
        family = torch.tensor([r[2] for r in rows], dtype=torch.long)
        for i, (p, a, _) in enumerate(rows):
            x[i, : len(p)] = torch.tensor(p)
            x[i, len(p): len(p) + len(a)] = torch.tensor(a)
            answer_region[i, len(p):] = True
            content[i, len(p): len(p) + len(a)] = True
        g = torch.Generator().manual_seed(rng.getrandbits(63))
        t = torch.rand(n_rows, 1, generator=g) * 0.98 + 0.02
        masked = (torch.rand(x.shape, generator=g) < t) & answer_region
        noisy = torch.where(masked, torch.full_like(x, mask_id), x)
        return x, noisy, masked, t, content, answer_region & ~content, family


def loss_terms(model, x, noisy, masked, t, content, pad):
    logits = model(noisy).float()
    ce = F.cross_entropy(logits.view(-1, logits.shape[-1]), x.view(-1), reduction="none").view(x.shape)
    weighted = ce * masked / t
    answer_loss = (weighted * content).sum(1) / content.sum(1).clamp(min=1)
    pad_loss = (weighted * pad).sum(1) / pad.sum(1).clamp(min=1)
    return (answer_loss + 0.5 * pad_loss).mean(), answer_loss.mean(), pad_loss.mean(), answer_loss.detach()


def learning_rate(args, step, frac):
    warm = min(1.0, (step + 1) / args.warmup_steps)
    decay_start = 1.0 - args.decay_share
    if frac <= decay_start:
        return args.lr * warm
    progress = min(1.0, (frac - decay_start) / max(args.decay_share, 1e-9))
    return args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def save_checkpoint(out, model, opt, meta):
    tensors = {f"model.{k}": v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    names = dict(model.named_parameters())
    index = {id(p): name for name, p in names.items()}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p)
            if st:
                name = index[id(p)]
                tensors[f"adam_m.{name}"] = st["exp_avg"].detach().to(torch.bfloat16).cpu().contiguous()
                tensors[f"adam_v.{name}"] = st["exp_avg_sq"].detach().to(torch.bfloat16).cpu().contiguous()
                meta["adam_step"] = float(st["step"])
    tmp = os.path.join(out, "checkpoint.safetensors.tmp")
    save_file(tensors, tmp)
    os.replace(tmp, os.path.join(out, "checkpoint.safetensors"))
    with open(os.path.join(out, "checkpoint.json.tmp"), "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(os.path.join(out, "checkpoint.json.tmp"), os.path.join(out, "checkpoint.json"))


def load_checkpoint(out, model, opt, device):
    tensors = load_file(os.path.join(out, "checkpoint.safetensors"))
    with open(os.path.join(out, "checkpoint.json")) as f:
        meta = json.load(f)
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    for name, p in model.named_parameters():
        if f"adam_m.{name}" in tensors:
            opt.state[p] = {"step": torch.tensor(meta["adam_step"]),
                            "exp_avg": tensors[f"adam_m.{name}"].float().to(device),
                            "exp_avg_sq": tensors[f"adam_v.{name}"].float().to(device)}
    return meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", required=True, help="JSONL from `l2pd tasks export --split train`")
    ap.add_argument("--out", required=True, help="run folder: checkpoint, log.csv, exported model")
    ap.add_argument("--minutes", type=float, default=120, help="total training time across resumes (wall minutes)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup-steps", type=int, default=200)
    ap.add_argument("--decay-share", type=float, default=0.15, help="share of the budget spent decaying the lr")
    ap.add_argument("--tokens-per-batch", type=int, default=12288)
    ap.add_argument("--long-share", type=float, default=0.25, help="share of batches with 320/1088-wide canvases")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--checkpoint-minutes", type=float, default=10)
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                    help="torch.compile the model (one compile per batch shape)")
    ap.add_argument("--init", help="start from this Hugging Face LLaDA checkpoint folder (and its tokenizer)")
    ap.add_argument("--grow-layers", type=int, default=0, help="with --init: insert this many identity blocks")
    ap.add_argument("--size", choices=sorted(SIZE_PRESETS), default="tiny", help="model size from random weights")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    os.makedirs(args.out, exist_ok=True)
    tok_path = os.path.join(args.out, "tokenizer.json")
    resuming = os.path.exists(os.path.join(args.out, "checkpoint.safetensors"))

    from tokenizers import Tokenizer
    if args.init and not os.path.exists(tok_path):
        shutil.copyfile(os.path.join(args.init, "tokenizer.json"), tok_path)
    if os.path.exists(tok_path):
        tok = Tokenizer.from_file(tok_path)
    else:
        with open(args.tasks) as f:
            texts = [chat(e["prompt"]) + e["answer"] for e in map(json.loads, f)]
        tok = train_tokenizer(texts, SIZE_PRESETS[args.size]["vocab_size"])
        tok.save(tok_path)

    shape_path = os.path.join(args.out, "shape.json")
    if os.path.exists(shape_path):
        with open(shape_path) as f:
            sizes = json.load(f)
    elif args.init:
        with open(os.path.join(args.init, "config.json")) as f:
            c = json.load(f)
        sizes = {k: c[k] for k in ["d_model", "n_heads", "n_kv_heads", "mlp_hidden_size", "embedding_size", "vocab_size"]}
        sizes["n_layers"] = c["n_layers"] + args.grow_layers
    else:
        sizes = dict(SIZE_PRESETS[args.size], vocab_size=tok.get_vocab_size())
    with open(shape_path, "w") as f:
        json.dump(sizes, f, indent=1)
    assert sizes["embedding_size"] >= tok.get_vocab_size()

    eos_id, mask_id, eot_id = tok.token_to_id(EOS), tok.token_to_id(MASK), tok.token_to_id(EOT)
    examples, families = load_examples(args.tasks, tok, eot_id)
    if not 0 <= args.long_share <= 1:
        ap.error("--long-share must be between 0 and 1")
    batches = Batches(examples, args.tokens_per_batch, args.long_share)
    print(f"{len(examples)} examples, vocab {tok.get_vocab_size()}, device {device}, "
          f"{torch.get_num_threads()} threads", flush=True)

    torch.manual_seed(args.seed)
    model = LLaDA(sizes).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    meta = {"step": 0, "minutes": 0.0, "cpu_minutes": 0.0, "tokens": 0, "answer_tokens": 0}
    rng = random.Random(args.seed)
    if resuming:
        meta = load_checkpoint(args.out, model, opt, device)
        rng.setstate((meta["rng"][0], tuple(meta["rng"][1]), meta["rng"][2]))
        print(f"resumed at step {meta['step']}, {meta['minutes']:.1f} min, {meta['tokens'] / 1e6:.1f}M tokens",
              flush=True)
    elif args.init:
        old_layers = sizes["n_layers"] - args.grow_layers
        layer_map = grown_layer_map(old_layers, args.grow_layers)
        model.load_hf_state(load_file(os.path.join(args.init, "model.safetensors")), layer_map)
        meta["init"] = {"from": os.path.basename(os.path.normpath(args.init)), "layer_map": layer_map}
        print(f"initialised from {args.init}, layers {layer_map}", flush=True)
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, layers {sizes['n_layers']}", flush=True)
    step_fn = torch.compile(model, dynamic=False) if args.compile else model

    log_path = os.path.join(args.out, "log.csv")
    new_log = not os.path.exists(log_path)
    log_file = open(log_path, "a", newline="")
    log = csv.writer(log_file)
    if new_log:
        log.writerow(["step", "minutes", "cpu_minutes", "tokens", "answer_tokens", "loss", "answer_loss", "pad_loss",
                      "lr", "tokens_per_s"])
    # Answer loss per task family over the same windows (which families are learnt, which lag).
    family_path = os.path.join(args.out, "family-loss.csv")
    new_family_log = not os.path.exists(family_path)
    family_file = open(family_path, "a", newline="")
    family_log = csv.writer(family_file)
    if new_family_log:
        family_log.writerow(["step", "minutes", *families])
    family_sums = torch.zeros(len(families), dtype=torch.float64)
    family_counts = torch.zeros(len(families), dtype=torch.float64)

    budget = args.minutes * 60
    session_wall, session_cpu = time.time(), time.process_time()
    base_minutes, base_cpu = meta["minutes"], meta["cpu_minutes"]
    last_save, window_steps, window_tokens, window_start = time.time(), 0, 0, time.time()
    sums = [0.0, 0.0, 0.0]

    def minutes_now():
        return base_minutes + (time.time() - session_wall) / 60

    def checkpoint():
        meta.update(minutes=round(minutes_now(), 2),
                    cpu_minutes=round(base_cpu + (time.process_time() - session_cpu) / 60, 2),
                    rng=list(rng.getstate()), shape=sizes)
        save_checkpoint(args.out, model, opt, meta)
        export(model, tok, os.path.join(args.out, "model"),
               {k: meta[k] for k in ["step", "minutes", "cpu_minutes", "tokens", "answer_tokens"]})

    while minutes_now() * 60 < budget:
        lr = learning_rate(args, meta["step"], minutes_now() * 60 / budget)
        for g in opt.param_groups:
            g["lr"] = lr
        x, noisy, masked, t, content, pad, family = (v.to(device) for v in batches.draw(rng, eos_id, mask_id))
        loss, answer_loss, pad_loss, row_loss = loss_terms(step_fn, x, noisy, masked, t, content, pad)
        family_sums += torch.bincount(family.cpu(), weights=row_loss.cpu().double(), minlength=len(families))
        family_counts += torch.bincount(family.cpu(), minlength=len(families)).double()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        meta["step"] += 1
        meta["tokens"] += x.numel()
        meta["answer_tokens"] += int(content.sum())
        window_tokens += x.numel()
        window_steps += 1
        for i, v in enumerate((loss, answer_loss, pad_loss)):
            sums[i] += v.item()
        if meta["step"] % 50 == 0:
            rate = window_tokens / max(time.time() - window_start, 1e-6)
            means = [s / window_steps for s in sums]
            cpu = base_cpu + (time.process_time() - session_cpu) / 60
            log.writerow([meta["step"], f"{minutes_now():.2f}", f"{cpu:.2f}", meta["tokens"], meta["answer_tokens"],
                          *(f"{m:.4f}" for m in means), f"{lr:.2e}", f"{rate:.0f}"])
            log_file.flush()
            family_log.writerow([meta["step"], f"{minutes_now():.2f}",
                                 *(f"{v:.4f}" for v in (family_sums / family_counts.clamp(min=1)).tolist())])
            family_file.flush()
            family_sums.zero_()
            family_counts.zero_()
            print(f"step {meta['step']}  {minutes_now():6.1f} min  {meta['tokens'] / 1e6:7.1f}M tok  "
                  f"loss {means[0]:.4f} (answer {means[1]:.4f}, pad {means[2]:.4f})  lr {lr:.2e}  {rate:.0f} tok/s",
                  flush=True)
            sums, window_steps, window_tokens, window_start = [0.0, 0.0, 0.0], 0, 0, time.time()
        if time.time() - last_save > args.checkpoint_minutes * 60:
            checkpoint()
            last_save = time.time()
    checkpoint()
    print(f"done: step {meta['step']}, {meta['minutes']:.1f} min, exported {os.path.join(args.out, 'model')}",
          flush=True)


if __name__ == "__main__":
    main()
