#!/usr/bin/env python3
"""Read an int8 checkpoint written by `l2pd quantize` back into float32 (NumPy only).

The format: safetensors shards in the Hugging Face LLaDA layout where every projection
weight `X.weight` is I8 of shape [rows, columns] with `X.weight_scale` F32 of shape [rows],
and row r of the weight is `scale[r] * q[r]`; every other tensor is stored as it was.

    python3 scripts/read_int8_checkpoint.py INT8_DIR [ORIGINAL_DIR]

prints each quantized tensor's shape and, given the original checkpoint, the largest error
against it in units of the row's step (at most 0.5 when the file is right).
"""

import glob
import json
import os
import sys

import numpy as np


def tensors(directory):
    """name -> (dtype, shape, bytes) for every tensor of every shard."""
    out = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.safetensors"))):
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
            data = f.read()
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            start, end = entry["data_offsets"]
            out[name] = (entry["dtype"], entry["shape"], data[start:end])
    return out


def to_float(dtype, shape, raw):
    if dtype == "F32":
        return np.frombuffer(raw, "<f4").reshape(shape)
    if dtype == "BF16":
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if dtype == "F16":
        return np.frombuffer(raw, "<f2").astype(np.float32).reshape(shape)
    if dtype == "I8":
        return np.frombuffer(raw, np.int8).reshape(shape)
    raise ValueError(f"dtype {dtype}")


def dequantized(all_tensors):
    """name -> float32 array, int8 weights multiplied back by their row scales."""
    out = {}
    for name, (dtype, shape, raw) in all_tensors.items():
        if name.endswith("_scale") and name[: -len("_scale")] in all_tensors:
            continue
        values = to_float(dtype, shape, raw)
        if dtype == "I8":
            sdtype, sshape, sraw = all_tensors[name + "_scale"]
            values = values.astype(np.float32) * to_float(sdtype, sshape, sraw)[:, None]
        out[name] = values
    return out


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    quantized = tensors(argv[1])
    weights = dequantized(quantized)
    original = dequantized(tensors(argv[2])) if len(argv) > 2 else None
    for name, (dtype, shape, _) in sorted(quantized.items()):
        if dtype != "I8":
            continue
        line = f"{name}: int8 {shape}"
        if original is not None:
            w = original[name]
            step = np.maximum(np.abs(w).max(axis=1, keepdims=True) / 127, 1e-30)
            error = np.abs(weights[name] - w).max(axis=1, keepdims=True) / step
            line += f", largest error {float(error.max()):.3f} steps"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
