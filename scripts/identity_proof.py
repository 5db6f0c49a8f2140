#!/usr/bin/env python3
"""Reference values for the handshake's identity proofs (proto/PROTOCOL.md, "Identity") and
the SHA-256 digests the Swift implementation is tested against, from Python's hashlib."""
import hashlib
import struct


def proof(label: str, fingerprint: int, challenge: int) -> int:
    digest = hashlib.sha256(label.encode() + struct.pack("<Q", fingerprint) + struct.pack("<Q", challenge)).digest()
    return struct.unpack("<Q", digest[:8])[0] or 1


if __name__ == "__main__":
    f, c = 0x0123456789ABCDEF, 0xFEDCBA9876543210
    print(f"worker proof      {proof('l2pd-worker-proof', f, c):#018x}")
    print(f"coordinator proof {proof('l2pd-coordinator-proof', f, c):#018x}")
    for name, data in [("empty", b""), ("abc", b"abc"), ("a x 1000", b"a" * 1000), ("ramp x 3", bytes(range(256)) * 3)]:
        print(f"sha256({name}) {hashlib.sha256(data).hexdigest()}")
