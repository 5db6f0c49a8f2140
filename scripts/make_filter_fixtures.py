#!/usr/bin/env python3
"""Fixtures for Tests/L2PDFilterTests: a state dict shaped like the Learn2PD authors' filter
checkpoint (random values, seeded), converted by scripts/convert_authors_filter.py, and the
logits PyTorch's own `nn.Linear -> ReLU -> nn.Linear` gives for a few inputs (the reference
the Swift filter must match).

    /path/to/venv/bin/python scripts/make_filter_fixtures.py
"""

import json
import os
import sys
import tempfile

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_authors_filter import convert, unwrap  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests/L2PDFilterTests/Fixtures")


class AuthorsFilter(torch.nn.Module):
    """The authors' network as their checkpoint names it."""

    def __init__(self, block: int = 32):
        super().__init__()
        self.linear1 = torch.nn.Linear(block, block)
        self.linear2 = torch.nn.Linear(block, block)

    def forward(self, x):
        return self.linear2(torch.relu(self.linear1(x)))


def main() -> int:
    torch.manual_seed(2509)
    net = AuthorsFilter()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "filter.pt")
        torch.save({"model." + k: v for k, v in net.state_dict().items()}, path)  # a prefixed key, as some saves have
        tensors, metadata = convert(unwrap(torch.load(path, map_location="cpu", weights_only=True)), tau=0.96)
    os.makedirs(OUT, exist_ok=True)
    save_file(tensors, os.path.join(OUT, "authors-filter.safetensors"), metadata=metadata)
    # Inputs: confidences in [0, 1], one row all ones, one all zeros, a sorted ramp.
    x = torch.rand(5, 32, dtype=torch.float64)
    x[1] = 1
    x[2] = 0
    x[3] = torch.linspace(1, 0.3, 32)
    with torch.no_grad():
        logits = net.double()(x)
    with open(os.path.join(OUT, "authors-filter-logits.json"), "w") as f:
        json.dump({"inputs": x.tolist(), "logits": logits.tolist(), "tau": 0.96}, f)
    print(f"wrote {OUT}/authors-filter.safetensors and authors-filter-logits.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
