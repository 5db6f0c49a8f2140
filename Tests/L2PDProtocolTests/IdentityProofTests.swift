import Foundation
import Testing

@testable import L2PDProtocol

/// Golden digests and proofs from Python's `hashlib` and `hmac`, printed by `scripts/identity_proof.py`.
@Suite struct IdentityProofTests {
    func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    @Test func sha256MatchesHashlib() {
        #expect(hex(SHA256.hash([UInt8]())) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            hex(SHA256.hash([UInt8](repeating: 0x61, count: 1000))) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
        let ramp = (0..<3).flatMap { _ in (0..<256).map { UInt8($0) } }
        #expect(hex(SHA256.hash(ramp)) == "f3a25aa93aa2fbba28d79260535bbd6a5eb0fc1c24a8b0f04e12b484c1dfe363")
    }

    @Test func hmacMatchesPythonHMAC() {
        let fox = Array("The quick brown fox jumps over the lazy dog".utf8)
        #expect(
            hex(HMACSHA256.authenticate(fox, key: Array("key".utf8)))
                == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
        #expect(hex(HMACSHA256.authenticate(fox, key: [])) == "fb011e6154a19b9a4c767373c305275a5a69e8b68b0b4c9200c383dced19a416")
        // A key longer than the block is hashed first.
        #expect(
            hex(HMACSHA256.authenticate(fox, key: (0..<100).map { UInt8($0) }))
                == "a626ea260467e29b7b23d88f6c7aa5927487ebd377bd3a18364d5425110ff616")
    }

    /// The values of `proto/vectors/handshake.json`, written by `scripts/make_proto_vectors.py`.
    @Test func proofsMatchTheSpecification() throws {
        struct Handshake: Decodable {
            var secret, fingerprint, challenge, nonce, workerProof, coordinatorProof: String
            var workerProofWithoutSecret, coordinatorProofWithoutSecret, stageProof: String
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let h = try decoder.decode(
            Handshake.self, from: Data(contentsOf: Golden.directory.appendingPathComponent("handshake.json")))
        let (f, c, n) = (Golden.u64(h.fingerprint), Golden.u64(h.challenge), Golden.u64(h.nonce))
        let secret = Array(h.secret.utf8)
        #expect(IdentityProof.worker(fingerprint: f, challenge: c, nonce: n, secret: secret) == Golden.u64(h.workerProof))
        #expect(IdentityProof.coordinator(fingerprint: f, challenge: c, nonce: n, secret: secret) == Golden.u64(h.coordinatorProof))
        #expect(IdentityProof.worker(fingerprint: f, challenge: c, nonce: n) == Golden.u64(h.workerProofWithoutSecret))
        #expect(IdentityProof.coordinator(fingerprint: f, challenge: c, nonce: n) == Golden.u64(h.coordinatorProofWithoutSecret))
        #expect(IdentityProof.stage(fingerprint: f, challenge: c, nonce: n, secret: secret) == Golden.u64(h.stageProof))
        #expect(IdentityProof.stage(fingerprint: f, challenge: c, nonce: n, secret: secret) != Golden.u64(h.coordinatorProof))
        // A proof carries over to no other nonce, secret or model.
        let proof = IdentityProof.worker(fingerprint: f, challenge: c, nonce: n, secret: secret)
        #expect(IdentityProof.worker(fingerprint: f, challenge: c &+ 1, nonce: n, secret: secret) != proof)
        #expect(IdentityProof.worker(fingerprint: f, challenge: c, nonce: n &+ 1, secret: secret) != proof)
        #expect(IdentityProof.worker(fingerprint: f, challenge: c, nonce: n, secret: secret.dropLast() + [secret.last! ^ 1]) != proof)
        #expect(IdentityProof.worker(fingerprint: f &+ 1, challenge: c, nonce: n, secret: secret) != proof)
    }
}
