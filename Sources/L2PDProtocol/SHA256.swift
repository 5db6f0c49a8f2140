/// SHA-256 (FIPS 180-4), for the handshake's identity proofs. Pure Swift: the toolchain's
/// Foundation has no hash functions on Linux.
public struct SHA256: Sendable {
    private var state: [UInt32] = [
        0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
    ]
    private var pending: [UInt8] = []
    private var length: UInt64 = 0

    private static let k: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    public init() {}

    public mutating func update(_ bytes: some Sequence<UInt8>) {
        for byte in bytes {
            pending.append(byte)
            length &+= 1
            if pending.count == 64 {
                compress(pending)
                pending.removeAll(keepingCapacity: true)
            }
        }
    }

    public mutating func finalize() -> [UInt8] {
        let bits = length &* 8
        var tail: [UInt8] = [0x80]
        while (pending.count + tail.count) % 64 != 56 { tail.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) { tail.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
        let savedLength = length
        update(tail)
        length = savedLength
        return state.flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> UInt32(24 - 8 * $0)) } }
    }

    public static func hash(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        var h = SHA256()
        h.update(bytes)
        return h.finalize()
    }

    private mutating func compress(_ block: [UInt8]) {
        var w = [UInt32](repeating: 0, count: 64)
        for i in 0..<16 {
            w[i] = UInt32(block[4 * i]) << 24 | UInt32(block[4 * i + 1]) << 16 | UInt32(block[4 * i + 2]) << 8 | UInt32(block[4 * i + 3])
        }
        func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { x >> n | x << (32 - n) }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, h) = (state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7])
        for i in 0..<64 {
            let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            let choice = (e & f) ^ (~e & g)
            let t1 = h &+ s1 &+ choice &+ Self.k[i] &+ w[i]
            let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            let majority = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ majority
            (h, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
        }
        for (i, v) in [a, b, c, d, e, f, g, h].enumerated() { state[i] = state[i] &+ v }
    }
}

/// The handshake's proofs that a peer holds the same model without sending its fingerprint:
/// the first 8 bytes (little-endian) of SHA-256(label, fingerprint as 8 little-endian bytes,
/// challenge as 8 little-endian bytes). See `proto/PROTOCOL.md`, "Identity".
/// HMAC-SHA256 (RFC 2104): the handshake's keyed proofs.
public enum HMACSHA256 {
    public static func authenticate(_ message: [UInt8], key: [UInt8]) -> [UInt8] {
        var block = key.count > 64 ? SHA256.hash(key) : key
        block += Array(repeating: 0, count: 64 - block.count)
        var inner = SHA256()
        inner.update(block.map { $0 ^ 0x36 })
        inner.update(message)
        var outer = SHA256()
        outer.update(block.map { $0 ^ 0x5c })
        outer.update(inner.finalize())
        return outer.finalize()
    }
}

/// The handshake's proofs (proto/PROTOCOL.md, "Identity and authentication"): each side proves
/// it holds the same model and the same cluster secret by a MAC over both sides' fresh nonces,
/// so neither the fingerprint nor the secret is ever sent and no proof can be replayed.
public enum IdentityProof {
    public static let workerLabel = "l2pd-worker-proof"
    public static let coordinatorLabel = "l2pd-coordinator-proof"
    public static let stageLabel = "l2pd-stage-proof"

    /// The worker's proof for the coordinator's nonce `challenge` and its own `nonce`.
    public static func worker(fingerprint: UInt64, challenge: UInt64, nonce: UInt64, secret: [UInt8] = []) -> UInt64 {
        proof(workerLabel, fingerprint, challenge, nonce, secret)
    }

    /// The coordinator's proof for its nonce `challenge` and the worker's `nonce`.
    public static func coordinator(fingerprint: UInt64, challenge: UInt64, nonce: UInt64, secret: [UInt8] = []) -> UInt64 {
        proof(coordinatorLabel, fingerprint, challenge, nonce, secret)
    }

    /// The proof of a worker dialling the next stage (`challenge`: its nonce; `nonce`: the next
    /// stage's).
    public static func stage(fingerprint: UInt64, challenge: UInt64, nonce: UInt64, secret: [UInt8] = []) -> UInt64 {
        proof(stageLabel, fingerprint, challenge, nonce, secret)
    }

    /// The first 8 bytes, little-endian, of HMAC-SHA256(secret, label ‖ F ‖ challenge ‖ nonce);
    /// 0 becomes 1 (0 means "no proof" on the wire).
    static func proof(_ label: String, _ fingerprint: UInt64, _ challenge: UInt64, _ nonce: UInt64, _ secret: [UInt8]) -> UInt64 {
        var bytes = Array(label.utf8)
        for value in [fingerprint, challenge, nonce] { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        let digest = HMACSHA256.authenticate(bytes, key: secret)
        let value = (0..<8).reduce(UInt64(0)) { $0 | UInt64(digest[$1]) << (8 * UInt64($1)) }
        return value == 0 ? 1 : value
    }

    /// A fresh non-zero nonce from the system's random source.
    public static func nonce() -> UInt64 {
        var value: UInt64 = 0
        while value == 0 { value = UInt64.random(in: .min ... .max) }
        return value
    }
}
