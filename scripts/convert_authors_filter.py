#!/usr/bin/env python3
"""Convert the Learn2PD authors' filter checkpoint into an l2pd filter file.

The authors publish their filter for LLaDA-8B-Instruct as a PyTorch state dict of a two-layer
MLP over a block's 32 confidences: `linear1.weight` [32, 32], `linear1.bias` [32],
`linear2.weight` [32, 32], `linear2.bias` [32]. It outputs raw logits (the sigmoid is applied
outside) and accepts a position when sigmoid(logit) > 0.96. l2pd's filter has the same network
(`Linear -> ReLU -> Linear`, PyTorch's `[out, in]` layout) stored as safetensors with
`fc1.*` / `fc2.*` names and the block length, tau and input features in the metadata, so the
conversion renames the tensors and writes that metadata. The weights are not shipped with
l2pd; a user who has the file converts it and passes the result with `--filter`:

    python3 scripts/convert_authors_filter.py filter.pt learn2pd-llada8b.safetensors
    l2pd generate --model LLaDA-8B-Instruct --filter learn2pd-llada8b.safetensors "..."

Needs torch (to read the pickle) and safetensors. Keys may carry a prefix (`module.`, `model.`)
and the dict may be wrapped under `state_dict` or `model`; anything else is refused with the
keys found.
"""

from __future__ import annotations

import argparse
import sys

NAMES = {"linear1.weight": "fc1.weight", "linear1.bias": "fc1.bias",
         "linear2.weight": "fc2.weight", "linear2.bias": "fc2.bias"}


class ConversionError(ValueError):
    pass


def unwrap(obj) -> dict:
    """The state dict inside a checkpoint object."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                return obj[key]
        return obj
    if hasattr(obj, "state_dict"):
        return obj.state_dict()
    raise ConversionError(f"not a state dict: {type(obj).__name__}")


def convert(state: dict, tau: float = 0.96) -> tuple[dict, dict]:
    """Renamed float32 tensors and the metadata of an l2pd filter file."""
    import torch

    found = {}
    for key, value in state.items():
        for theirs, ours in NAMES.items():
            if key == theirs or key.endswith("." + theirs):
                if ours in found:
                    raise ConversionError(f"two tensors end in {theirs}")
                found[ours] = value
    missing = [theirs for theirs, ours in NAMES.items() if ours not in found]
    if missing:
        raise ConversionError(f"missing {', '.join(missing)}; keys found: {', '.join(sorted(state))[:400]}")
    w1, b1, w2, b2 = (found[n] for n in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"))
    if w1.dim() != 2 or w2.dim() != 2:
        raise ConversionError("linear1.weight and linear2.weight must be matrices")
    block, width = w1.shape
    # l2pd's filter has a hidden width equal to the block length and one logit per position.
    expected = {"fc1.weight": (block, width), "fc1.bias": (block,), "fc2.weight": (block, block), "fc2.bias": (block,)}
    for name, shape in expected.items():
        if tuple(found[name].shape) != shape:
            raise ConversionError(f"{name} has shape {tuple(found[name].shape)}, expected {shape}")
    if width != block:
        raise ConversionError(f"the filter reads {width} inputs per block of {block}; only the 32-confidence filter is known")
    if not 0 < tau < 1:
        raise ConversionError(f"tau must be in (0, 1), got {tau}")
    tensors = {name: found[name].detach().to(torch.float32).contiguous() for name in expected}
    for name, t in tensors.items():
        if not torch.isfinite(t).all():
            raise ConversionError(f"{name} has non-finite values")
    metadata = {"block_length": str(block), "tau": str(tau), "features": "confidence", "format": "learn2pd-filter"}
    return tensors, metadata


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="the authors' state dict (.pt / .pth)")
    ap.add_argument("out", help="l2pd filter file to write (.safetensors)")
    ap.add_argument("--tau", type=float, default=0.96, help="acceptance threshold stored in the file (default 0.96)")
    a = ap.parse_args(argv[1:])
    import torch
    from safetensors.torch import save_file

    try:
        state = unwrap(torch.load(a.checkpoint, map_location="cpu", weights_only=True))
        tensors, metadata = convert(state, a.tau)
    except (ConversionError, OSError, RuntimeError) as e:
        print(f"convert_authors_filter: {a.checkpoint}: {e}", file=sys.stderr)
        return 1
    save_file(tensors, a.out, metadata=metadata)
    print(f"wrote {a.out}: block length {metadata['block_length']}, tau {a.tau}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
