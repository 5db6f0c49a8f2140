#!/usr/bin/env python3
"""Writes the golden frames of the L2PD cluster protocol to proto/vectors/.

An independent encoder written from proto/PROTOCOL.md with `struct` and NumPy only (it does
not look at the Swift code). For every frame it writes:

- `NAME.bin`: the frame bytes;
- an entry in `vectors.json`: the values the frame carries (u64 as "0x..." hex strings, f32
  as their IEEE bit patterns, so nothing is lost to JSON numbers), or, for the `bad_*`
  frames, the error code a decoder must throw;
- a readable section in `README.md`.

Deterministic: NumPy's PCG64 with fixed seeds. Run: `python3 scripts/make_proto_vectors.py`.
"""

import hashlib
import hmac
import json
import os
import struct

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "proto", "vectors")

MAGIC = b"L2PD"
VERSION = 1
HEADER = 24
KINDS = {
    "hello": 1, "shard_assignment": 2, "forward": 3, "hidden_states": 4, "readout": 5,
    "release_cache": 6, "ping": 7, "pong": 8, "error": 9, "chained_forward": 10,
}
F32, I32 = 1, 2
ROLES = {"coordinator": 1, "worker": 2, "stage": 3}
CACHE = {"none": 0, "refresh": 1, "reuse": 2}
ERRORS = {
    "bad_magic": 1, "unsupported_version": 2, "unknown_kind": 3, "reserved_not_zero": 4,
    "truncated": 5, "length_mismatch": 6, "frame_too_large": 7, "limit_exceeded": 8,
    "invalid_utf8": 9, "bad_tensor": 10, "invalid_range": 11, "read_position_outside": 12,
    "invalid_value": 13, "duplicate_sequence": 14,
    "fingerprint_mismatch": 32, "not_assigned": 33, "stage_failed": 34, "busy": 35, "internal": 36,
    "not_authenticated": 37, "next_stage_unreachable": 38, "chain_unsupported": 39,
}


def proof(label, fingerprint, challenge, nonce, secret):
    """The handshake MAC: the first 8 bytes, little-endian, of HMAC-SHA256(secret, label | F | C | N)."""
    message = label.encode() + struct.pack("<QQQ", fingerprint, challenge, nonce)
    return struct.unpack("<Q", hmac.new(secret, message, hashlib.sha256).digest()[:8])[0] or 1


class Frame:
    """A frame under construction; `buf` starts at the header, so its length is the frame offset."""

    def __init__(self, kind, request_id, step, flags=0):
        self.buf = bytearray(struct.pack("<4sHBBQII", MAGIC, VERSION, KINDS[kind], flags, request_id, step, 0))

    def put(self, fmt, *values):
        self.buf += struct.pack("<" + fmt, *values)

    def pad(self, alignment):
        while len(self.buf) % alignment:
            self.buf.append(0)

    def text(self, data):
        """Bytes only; the u32 length is written by the caller where the layout puts it."""
        self.buf += data
        self.pad(8)

    def tensors(self, arrays):
        """Tensor section: count, descriptors, pad16, payloads each padded to 16."""
        self.put("II", len(arrays), 0)
        for array in arrays:
            dtype = {np.dtype("<f4"): F32, np.dtype("<i4"): I32}[array.dtype]
            self.put("BBHI", dtype, array.ndim, 0, array.nbytes)
            for dim in array.shape:
                self.put("I", dim)
            self.pad(8)
        self.pad(16)
        for array in arrays:
            self.buf += array.tobytes()
            self.pad(16)

    def finish(self):
        struct.pack_into("<I", self.buf, 20, len(self.buf) - HEADER)
        return bytes(self.buf)


def runs(positions):
    """Maximal runs of consecutive ascending positions, as (first, count)."""
    out = []
    for p in positions:
        if out and p == out[-1][0] + out[-1][1]:
            out[-1][1] += 1
        else:
            out.append([p, 1])
    return [tuple(r) for r in out]


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def bits(array):
    return [int(b) for b in np.asarray(array, dtype="<f4").view("<u4")]


def hex64(x):
    return "0x%016x" % x


def sequence_record(frame, s):
    rs = runs(s["reads"])
    flags = 1 if s["eos"] else 0
    frame.put(
        "QQIIIIfBBHII", s["id"], s["seed"], s["length"], s["computed"][0], s["computed"][1], s["step"],
        np.float32(s["temperature"]), CACHE[s["cache"]], flags, s["top_k"], len(rs), len(s["reads"]))
    for first, count in rs:
        frame.put("II", first, count)


def batch(kind, request_id, step, sequences, tensor):
    frame = Frame(kind, request_id, step)
    frame.put("II", len(sequences), 0)
    for s in sequences:
        sequence_record(frame, s)
    frame.tensors([tensor])
    return frame.finish()


def sequence_json(s):
    return {
        "id": hex64(s["id"]), "length": s["length"], "computed": list(s["computed"]), "cache": s["cache"],
        "reads": s["reads"], "temperature_bits": f32_bits(s["temperature"]), "seed": hex64(s["seed"]),
        "step": s["step"], "eos": s["eos"], "top_k": s["top_k"],
    }


def seq(id, length, computed=None, cache="none", reads=(), temperature=0.0, seed=0, step=0, eos=False, top_k=0):
    return {
        "id": id, "length": length, "computed": computed or (0, length), "cache": cache, "reads": list(reads),
        "temperature": temperature, "seed": seed, "step": step, "eos": eos, "top_k": top_k,
    }


def readout(request_id, step, entries):
    frame = Frame("readout", request_id, step)
    frame.put("II", len(entries), 0)
    for e in entries:
        rs = runs(e["positions"])
        n = len(e["positions"])
        top_k = len(e["top_tokens"]) // n if n else 0
        frame.put("QIIHBBI", e["id"], len(rs), n, top_k, 1 if len(e["eos"]) else 0, 0, 0)
        for first, count in rs:
            frame.put("II", first, count)
    tokens = np.array([t for e in entries for t in e["tokens"]], dtype="<i4")
    conf = np.array([c for e in entries for c in e["confidences"]], dtype="<f4")
    arrays = [tokens, conf]
    eos = np.array([c for e in entries for c in e["eos"]], dtype="<f4")
    if eos.size:
        arrays.append(eos)
    top_tokens = np.array([t for e in entries for t in e["top_tokens"]], dtype="<i4")
    top_probs = np.array([p for e in entries for p in e["top_probabilities"]], dtype="<f4")
    if top_tokens.size:
        arrays += [top_tokens, top_probs]
    frame.tensors(arrays)
    return frame.finish()


def readout_json(e):
    return {
        "id": hex64(e["id"]), "positions": e["positions"], "tokens": [int(t) for t in e["tokens"]],
        "confidence_bits": bits(e["confidences"]), "eos_bits": bits(e["eos"]),
        "top_tokens": [int(t) for t in e["top_tokens"]], "top_probability_bits": bits(e["top_probabilities"]),
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240925)
    vectors = []  # (name, bytes, json entry, readable description)

    def add(name, data, entry, description):
        vectors.append((name, data, entry, description))

    # The handshake of PROTOCOL.md, "Identity and authentication", with these values.
    fingerprint = 0x0123456789ABCDEF
    secret = b"example cluster secret"
    challenge, nonce = 0xFEDCBA9876543210, 0x0F1E2D3C4B5A6978
    worker_proof = proof("l2pd-worker-proof", fingerprint, challenge, nonce, secret)
    coordinator_proof = proof("l2pd-coordinator-proof", fingerprint, challenge, nonce, secret)

    # hello
    for name, role, text, rid, field, own_nonce in [
            ("hello_coordinator", "coordinator", "coordinator", 1, 0, challenge),
            ("hello_worker", "worker", "stage-1 \u2202 worker", 2, worker_proof, nonce)]:
        f = Frame("hello", rid, 0)
        data = text.encode("utf-8")
        f.put("HBBIQQ", 1, ROLES[role], 0, len(data), field, own_nonce)
        f.text(data)
        add(name, f.finish(),
            {"request_id": hex64(rid), "step": 0, "kind": "hello",
             "hello": {"version": 1, "role": role, "fingerprint": hex64(field), "nonce": hex64(own_nonce), "name": text}},
            f"hello from the {role}: protocol version 1, proof {hex64(field)}, nonce {hex64(own_nonce)}, name {text!r} "
            f"({len(data)} UTF-8 bytes).")

    # shard assignment
    for name, layers, url, rid in [("shard_first", (0, 8), "tcp://10.0.0.2:5601", 3),
                                   ("shard_last", (24, 32), "", 4)]:
        f = Frame("shard_assignment", rid, 0)
        embeds, reads_out = layers[0] == 0, layers[1] == 32
        data = url.encode("utf-8")
        f.put("QIIIBBHII", coordinator_proof, 32, layers[0], layers[1], (1 if embeds else 0) | (2 if reads_out else 0),
              0, 0, len(data), 0)
        f.text(data)
        add(name, f.finish(),
            {"request_id": hex64(rid), "step": 0, "kind": "shard_assignment",
             "shard_assignment": {"fingerprint": hex64(coordinator_proof), "total_layers": 32, "layers": list(layers),
                                  "embeds": embeds, "reads_out": reads_out, "url": url}},
            f"shard assignment: layers {layers[0]}..<{layers[1]} of 32, embeds={embeds}, reads_out={reads_out}, "
            f"next stage URL {url!r}.")

    # forward with token ids: two sequences, one refresh block read, one with scattered reads
    a = seq(7, 96, cache="refresh", reads=range(64, 96))
    b = seq(2**63 + 5, 40, reads=[8, 9, 10, 20, 30, 31], temperature=0.7, seed=0xDEADBEEFCAFEF00D, step=12,
            eos=True, top_k=2)
    tokens = rng.integers(0, 126464, size=96 + 40).astype("<i4")
    add("forward_tokens", batch("forward", 10, 5, [a, b], tokens),
        {"request_id": hex64(10), "step": 5, "kind": "forward", "sequences": [sequence_json(a), sequence_json(b)],
         "tokens": [int(t) for t in tokens]},
        "forward to the first stage, 2 sequences: id 7 (length 96, refresh, reads 64..<96 as one run, greedy) "
        "and id 2^63+5 (length 40, no cache, reads [8,9,10,20,30,31] as 3 runs, temperature 0.7, seed "
        "0xdeadbeefcafef00d, step 12, EOS probability, top 2); I32 token tensor [136] from PCG64 seed 20240925.")

    # forward with hidden states (a later stage fed by the coordinator), dual-cache step
    c = seq(11, 128, computed=(32, 64), cache="reuse", reads=range(32, 64), temperature=0.25, seed=99, step=3)
    hidden = rng.standard_normal((32, 16)).astype("<f4")
    add("forward_hidden", batch("forward", 11, 3, [c], hidden),
        {"request_id": hex64(11), "step": 3, "kind": "forward", "sequences": [sequence_json(c)],
         "hidden": {"d_model": 16, "bits": bits(hidden.ravel())}},
        "forward carrying hidden states: 1 sequence id 11, length 128, reuse, computed 32..<64, reads 32..<64, "
        "temperature 0.25, seed 99, step 3; F32 tensor [32, 16] standard normal.")

    # hidden states: one 32-position block at d_model 128
    d = seq(42, 256, computed=(64, 96), cache="reuse", reads=range(64, 96), step=17)
    block = rng.standard_normal((32, 128)).astype("<f4")
    block[0, :4] = [0.0, -0.0, np.inf, -np.inf]  # travel as bits like any other value
    add("hidden_block", batch("hidden_states", 12, 17, [d], block),
        {"request_id": hex64(12), "step": 17, "kind": "hidden_states", "sequences": [sequence_json(d)],
         "hidden": {"d_model": 128, "bits": bits(block.ravel())}},
        "hidden states of one 32-position block at d_model 128: sequence id 42, length 256, reuse, computed "
        "64..<96, reads 64..<96, step 17; F32 tensor [32, 128] standard normal with row 0 starting "
        "0, -0, +inf, -inf. 112 bytes of header, record, descriptor and padding before 16384 payload bytes.")

    # readout of one block
    e1 = {"id": 42, "positions": list(range(64, 96)), "tokens": rng.integers(0, 126464, 32),
          "confidences": rng.uniform(0, 1, 32).astype("<f4"), "eos": [], "top_tokens": [], "top_probabilities": []}
    add("readout_block", readout(12, 17, [e1]),
        {"request_id": hex64(12), "step": 17, "kind": "readout", "readouts": [readout_json(e1)]},
        "readout of one 32-position block (sequence 42, positions 64..<96 as one run): tokens and confidences "
        "only, 112 + 8 x 32 = 368 bytes.")

    # readout with EOS probabilities and top-k, three sequences (one without reads)
    e2 = {"id": 2**63 + 5, "positions": [8, 9, 10, 20, 30, 31], "tokens": rng.integers(0, 126464, 6),
          "confidences": rng.uniform(0, 1, 6).astype("<f4"), "eos": rng.uniform(0, 1, 6).astype("<f4"),
          "top_tokens": rng.integers(0, 126464, 12), "top_probabilities": np.sort(rng.uniform(0, 1, 12))[::-1]}
    e3 = {"id": 3, "positions": [5, 4, 3], "tokens": [126081, 0, 17],
          "confidences": np.array([1.0, 0.5, 0.25], dtype="<f4"), "eos": [], "top_tokens": [126081, 0, 17],
          "top_probabilities": np.array([1.0, 0.5, 0.25], dtype="<f4")}
    e4 = {"id": 0, "positions": [], "tokens": [], "confidences": [], "eos": [], "top_tokens": [],
          "top_probabilities": []}
    add("readout_eos_topk", readout(13, 18, [e2, e3, e4]),
        {"request_id": hex64(13), "step": 18, "kind": "readout",
         "readouts": [readout_json(e2), readout_json(e3), readout_json(e4)]},
        "readout of 3 sequences: id 2^63+5 with 6 positions [8,9,10,20,30,31] (3 runs), EOS probabilities "
        "and top 2; id 3 with positions [5,4,3] (3 runs, descending) and top 1, no EOS; id 0 with no "
        "positions. Tensors: tokens I32 [9], confidences F32 [9], EOS F32 [6], top tokens I32 [15], top "
        "probabilities F32 [15].")

    # release cache
    ids = [7, 2**63 + 5, 0]
    f = Frame("release_cache", 14, 0)
    f.put("II", len(ids), 0)
    for i in ids:
        f.put("Q", i)
    add("release_cache", f.finish(),
        {"request_id": hex64(14), "step": 0, "kind": "release_cache", "ids": [hex64(i) for i in ids]},
        "release the K/V caches of sequences 7, 2^63+5 and 0.")

    # ping / pong
    f = Frame("ping", 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFF)
    f.put("Q", 0x1122334455667788)
    add("ping", f.finish(),
        {"request_id": hex64(0xFFFFFFFFFFFFFFFF), "step": 0xFFFFFFFF, "kind": "ping",
         "nonce": hex64(0x1122334455667788)},
        "ping with nonce 0x1122334455667788, request id 2^64-1 and step 2^32-1 (largest values).")
    weight_bytes, cache_bytes = 8_015_314_944, 2**64 - 1
    f = Frame("pong", 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFF)
    f.put("QQQ", 0x1122334455667788, weight_bytes, cache_bytes)
    add("pong", f.finish(),
        {"request_id": hex64(0xFFFFFFFFFFFFFFFF), "step": 0xFFFFFFFF, "kind": "pong",
         "nonce": hex64(0x1122334455667788), "weight_bytes": hex64(weight_bytes), "cache_bytes": hex64(cache_bytes)},
        "pong with nonce 0x1122334455667788, 8015314944 bytes of weights and 2^64-1 bytes of K/V "
        "cache held, request id 2^64-1 and step 2^32-1 (largest values).")

    # error
    message = "sequence 7: no K/V cache to reuse (refresh it first)"
    f = Frame("error", 10, 5)
    data = message.encode("utf-8")
    f.put("HHI", ERRORS["stage_failed"], 0, len(data))
    f.text(data)
    add("error", f.finish(),
        {"request_id": hex64(10), "step": 5, "kind": "error", "error": {"code": 34, "text": message}},
        f"error 34 (stage_failed) answering request 10 step 5: {message!r}.")

    # The stage handshake of a chained pass: the dialling worker's hello with its nonce, then
    # with its proof over both nonces (the stage proof, label l2pd-stage-proof).
    stage_proof = proof("l2pd-stage-proof", fingerprint, challenge, nonce, secret)
    for name, rid, field, own_nonce in [("hello_stage", 5, 0, challenge), ("hello_stage_proof", 6, stage_proof, 0)]:
        text = "tcp://10.0.0.2:5601 layers 0..<16"
        f = Frame("hello", rid, 0)
        data = text.encode("utf-8")
        f.put("HBBIQQ", 1, ROLES["stage"], 0, len(data), field, own_nonce)
        f.text(data)
        add(name, f.finish(),
            {"request_id": hex64(rid), "step": 0, "kind": "hello",
             "hello": {"version": 1, "role": "stage", "fingerprint": hex64(field), "nonce": hex64(own_nonce), "name": text}},
            f"hello from a stage dialling the next one: proof {hex64(field)}, nonce {hex64(own_nonce)}, name {text!r}.")

    # chained forward: the coordinator's frame to the first of three stages (tokens, two URLs
    # still to go), then the first stage's frame to the second (hidden states, one URL left)
    route = ["tcp://10.0.0.3:5601", "tls+tcp://stage-3.example:7701"]
    g = seq(21, 48, cache="refresh", reads=range(16, 48), step=4)
    chained_tokens = rng.integers(0, 126464, size=48).astype("<i4")
    chained_hidden = rng.standard_normal((48, 8)).astype("<f4")
    for name, hops, tensor, entry in [
            ("chained_tokens", route, chained_tokens, {"tokens": [int(t) for t in chained_tokens]}),
            ("chained_hidden", route[1:], chained_hidden, {"hidden": {"d_model": 8, "bits": bits(chained_hidden.ravel())}})]:
        f = Frame("chained_forward", 15, 4)
        f.put("II", len(hops), 0)
        for url in hops:
            data = url.encode("utf-8")
            f.put("II", len(data), 0)
            f.text(data)
        f.put("II", 1, 0)
        sequence_record(f, g)
        f.tensors([tensor])
        add(name, f.finish(),
            dict({"request_id": hex64(15), "step": 4, "kind": "chained_forward", "route": hops, "sequences": [sequence_json(g)]},
                 **entry),
            f"chained forward with {len(hops)} stage(s) still to run {hops}: sequence 21, length 48, refresh, reads "
            f"16..<48, step 4; " + ("I32 token tensor [48]." if name == "chained_tokens" else "F32 hidden states [48, 8]."))

    # Frames every decoder must reject, with the code it must report.
    good = {name: data for name, data, _, _ in vectors}

    def bad(name, data, code, description):
        add(name, bytes(data), {"expect_error": ERRORS[code], "expect_error_name": code}, description + f" Must fail: {code}.")

    def patched(name, offset, fmt, value):
        data = bytearray(good[name])
        struct.pack_into("<" + fmt, data, offset, value)
        return data

    bad("bad_magic", patched("ping", 0, "4s", b"L2PE"), "bad_magic", "ping with magic `L2PE`.")
    bad("bad_version", patched("ping", 4, "H", 2), "unsupported_version", "ping with version 2.")
    bad("bad_kind", patched("ping", 6, "B", 11), "unknown_kind", "ping with kind 11.")
    bad("bad_flags", patched("ping", 7, "B", 1), "reserved_not_zero", "ping with header flags 1.")
    bad("bad_short_header", good["ping"][:23], "truncated", "the first 23 bytes of a ping.")
    bad("bad_short_payload", good["ping"][:28], "truncated", "a ping cut 4 bytes short of its payload length.")
    bad("bad_trailing_byte", good["ping"] + b"\x00", "length_mismatch", "a ping with one extra byte.")
    bad("bad_frame_too_large", patched("ping", 20, "I", 0xFFFFFFF0), "frame_too_large",
        "a ping whose payload length is 0xFFFFFFF0.")
    hello_pad = len(good["hello_coordinator"]) - 1
    bad("bad_padding", patched("hello_coordinator", hello_pad, "B", 0x20), "reserved_not_zero",
        "hello_coordinator with its last padding byte set to 0x20.")
    bad_text = bytearray(good["error"])
    bad_text[HEADER + 8] = 0xFF
    bad("bad_utf8", bad_text, "invalid_utf8", "the error frame with its first text byte replaced by 0xFF.")
    # forward_tokens: sequence b's record starts after a's record (48) and run (8); its first run
    # is at record + 48. Move the run's first position to 39 so it runs past the computed end 40.
    b_record = HEADER + 8 + 48 + 8
    bad("bad_read_outside", patched("forward_tokens", b_record + 48, "I", 39), "read_position_outside",
        "forward_tokens with sequence 2^63+5's first run (count 3) starting at 39, past computed end 40.")
    bad("bad_duplicate", patched("forward_tokens", b_record, "Q", 7), "duplicate_sequence",
        "forward_tokens with the second sequence id changed to 7.")
    bad("bad_range", patched("forward_tokens", HEADER + 8 + 24, "I", 97), "invalid_range",
        "forward_tokens with sequence 7's computed end 97 > length 96.")
    bad("bad_cache", patched("forward_tokens", HEADER + 8 + 36, "B", 3), "invalid_value",
        "forward_tokens with cache directive 3.")
    # hidden_block: the descriptor's first dim (rows) sits at 24 + 8 + 48 + 8 + 8 + 8.
    bad("bad_shape", patched("hidden_block", HEADER + 8 + 48 + 8 + 8 + 8, "I", 31), "bad_tensor",
        "hidden_block with the tensor's row count 31 instead of 32 (byte length disagrees).")
    bad("bad_runs", patched("readout_block", HEADER + 8 + 12, "I", 33), "invalid_value",
        "readout_block whose position count (33) disagrees with its one run (count 32).")

    manifest = {}
    for name, data, entry, _ in vectors:
        with open(os.path.join(OUT, name + ".bin"), "wb") as handle:
            handle.write(data)
        manifest[name] = dict(entry, size=len(data))
    with open(os.path.join(OUT, "vectors.json"), "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
        handle.write("\n")
    handshake = {
        "secret": secret.decode(), "fingerprint": hex64(fingerprint), "challenge": hex64(challenge), "nonce": hex64(nonce),
        "worker_proof": hex64(worker_proof), "coordinator_proof": hex64(coordinator_proof),
        "worker_proof_without_secret": hex64(proof("l2pd-worker-proof", fingerprint, challenge, nonce, b"")),
        "coordinator_proof_without_secret": hex64(proof("l2pd-coordinator-proof", fingerprint, challenge, nonce, b"")),
        "stage_proof": hex64(stage_proof),
    }
    with open(os.path.join(OUT, "handshake.json"), "w") as handle:
        json.dump(handshake, handle, indent=1, sort_keys=True)
        handle.write("\n")

    lines = [
        "# Golden frames",
        "",
        "Written by `scripts/make_proto_vectors.py`, an encoder written from `proto/PROTOCOL.md` with",
        "Python's `struct` and NumPy. `vectors.json` holds the values each frame carries (u64 as hex",
        "strings, f32 as IEEE bit patterns) or, for `bad_*` frames, the error code a decoder must report.",
        "A conforming implementation decodes every good frame to those values and re-encodes it to the",
        "same bytes.",
        "",
        "| File | Bytes | Content |",
        "|---|---|---|",
    ]
    for name, data, _, description in vectors:
        lines.append(f"| `{name}.bin` | {len(data)} | {description} |")
    lines += ["", "## Headers", "", "The first 24 bytes of each good frame (magic, version, kind, flags, request id, step, "
              "payload length):", "", "```"]
    for name, data, entry, _ in vectors:
        if "kind" in entry:
            magic, version, kind, flags, rid, step, length = struct.unpack_from("<4sHBBQII", data)
            lines.append(f"{name:18} {data[:24].hex(' ')}  kind={kind} request={rid:#x} step={step} payload={length}")
    lines += ["```", ""]
    with open(os.path.join(OUT, "README.md"), "w") as handle:
        handle.write("\n".join(lines))

    hidden_frame = good["hidden_block"]
    assert len(hidden_frame) - 32 * 128 * 4 == 112, len(hidden_frame)
    assert len(good["readout_block"]) == 112 + 8 * 32
    print(f"wrote {len(vectors)} frames to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
