#!/usr/bin/env python3
"""Reference values for the handshake's proofs (proto/PROTOCOL.md, "Identity and
authentication") and the SHA-256 and HMAC-SHA256 digests the Swift implementation is tested
against, from Python's hashlib and hmac."""
import hashlib
import hmac
import struct


def proof(label: str, fingerprint: int, challenge: int, nonce: int, secret: bytes) -> int:
    message = label.encode() + struct.pack("<QQQ", fingerprint, challenge, nonce)
    return struct.unpack("<Q", hmac.new(secret, message, hashlib.sha256).digest()[:8])[0] or 1


if __name__ == "__main__":
    f, c, n = 0x0123456789ABCDEF, 0xFEDCBA9876543210, 0x0F1E2D3C4B5A6978
    for secret in [b"example cluster secret", b""]:
        print(f"secret {secret!r}")
        print(f"  worker proof      {proof('l2pd-worker-proof', f, c, n, secret):#018x}")
        print(f"  coordinator proof {proof('l2pd-coordinator-proof', f, c, n, secret):#018x}")
    for name, data in [("empty", b""), ("abc", b"abc"), ("a x 1000", b"a" * 1000), ("ramp x 3", bytes(range(256)) * 3)]:
        print(f"sha256({name}) {hashlib.sha256(data).hexdigest()}")
    fox = b"The quick brown fox jumps over the lazy dog"
    for name, key in [("key", b"key"), ("empty key", b""), ("100-byte key", bytes(range(100)))]:
        print(f"hmac-sha256({name}, fox) {hmac.new(key, fox, hashlib.sha256).hexdigest()}")
