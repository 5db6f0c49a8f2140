import Testing

@testable import L2PDProtocol

/// Golden digests and proofs from Python's `hashlib`, printed by `scripts/identity_proof.py`.
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

    @Test func proofsMatchTheSpecification() {
        let fingerprint: UInt64 = 0x0123_4567_89ab_cdef
        let challenge: UInt64 = 0xfedc_ba98_7654_3210
        #expect(IdentityProof.worker(fingerprint: fingerprint, challenge: challenge) == 0x5b44_e8bc_c853_2deb)
        #expect(IdentityProof.coordinator(fingerprint: fingerprint, challenge: challenge) == 0x8a83_afbf_8d44_f2ba)
        // A proof neither reveals the fingerprint nor carries over to another challenge.
        #expect(IdentityProof.worker(fingerprint: fingerprint, challenge: challenge) != fingerprint)
        #expect(
            IdentityProof.worker(fingerprint: fingerprint, challenge: challenge + 1)
                != IdentityProof.worker(fingerprint: fingerprint, challenge: challenge))
    }
}
