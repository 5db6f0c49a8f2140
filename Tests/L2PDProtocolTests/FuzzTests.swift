import L2PDProtocol
import L2PDStageIO
import Testing

/// Feeds random and mutated frames to the decoder: each must throw a `ProtocolError` or decode
/// to a message that re-encodes to exactly the same bytes (the encoding is canonical).
@Suite struct FuzzTests {
    static func seeds() throws -> [[UInt8]] {
        var frames = try Golden.goodNames.map(Golden.bytes)
        var factory = MessageFactory(rng: SeededGenerator(seed: 0xF022))
        for kind in MessageKind.allCases {
            for _ in 0..<4 { frames.append(try factory.frame(kind).encode()) }
        }
        return frames
    }

    static let interesting: [UInt32] = [
        0, 1, 2, 3, 7, 8, 15, 16, 24, 31, 32, 255, 256, 257, 4096, 4097, 65_535, 65_536, 0x10_0000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
    ]

    static func mutate(_ input: [UInt8], _ rng: inout SeededGenerator) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            switch Int.random(in: 0...7, using: &rng) {
            case 0 where !bytes.isEmpty:  // bit flip
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                bytes[i] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
            case 1 where !bytes.isEmpty:  // random byte
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            case 2:  // truncation
                bytes.removeLast(Int.random(in: 0...bytes.count, using: &rng))
            case 3:  // extension
                bytes += (0..<Int.random(in: 1...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 4 where bytes.count >= 4:  // corrupt an aligned u32 field (counts, lengths, dims) with an edge value
                let i = Int.random(in: 0...((bytes.count - 4) / 4), using: &rng) * 4
                let v = interesting[Int.random(in: 0..<interesting.count, using: &rng)]
                for b in 0..<4 { bytes[i + b] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(b))) }
            case 5 where bytes.count >= 2:  // corrupt a u16 / u8 field
                let i = Int.random(in: 0...(bytes.count - 2), using: &rng)
                bytes[i] = [0, 1, 2, 3, 255].randomElement(using: &rng)!
            case 6 where bytes.count > 25:  // duplicate or drop a chunk in the middle
                let start = Int.random(in: 24...max(24, bytes.count - 1), using: &rng)
                let length = min(Int.random(in: 1...48, using: &rng), bytes.count - start)
                if Bool.random(using: &rng) {
                    bytes.insert(contentsOf: Array(bytes[start..<(start + length)]), at: start)
                } else {
                    bytes.removeSubrange(start..<(start + length))
                }
            default:
                break
            }
        }
        // Usually keep the header's payload length consistent so mutations reach the payload parser.
        if bytes.count >= 24 && Int.random(in: 0...3, using: &rng) != 0 {
            let length = UInt32(bytes.count - 24)
            for b in 0..<4 { bytes[20 + b] = UInt8(truncatingIfNeeded: length >> (8 * UInt32(b))) }
        }
        return bytes
    }

    @Test(.timeLimit(.minutes(5)))
    func mutatedAndRandomFramesNeverTrap() throws {
        let seeds = try Self.seeds()
        var rng = SeededGenerator(seed: 0xF0F0_2025)
        var accepted = 0
        var codes: [ProtocolErrorCode: Int] = [:]
        let iterations = 20_000
        for i in 0..<iterations {
            let bytes: [UInt8]
            if i % 10 == 0 {
                // Pure noise, sometimes behind a valid header prefix.
                var noise = (0..<Int.random(in: 0...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if noise.count >= 24 && i % 20 == 0 {
                    let seed = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
                    noise.replaceSubrange(0..<8, with: seed[0..<8])
                    let length = UInt32(noise.count - 24)
                    for b in 0..<4 { noise[20 + b] = UInt8(truncatingIfNeeded: length >> (8 * UInt32(b))) }
                }
                bytes = noise
            } else {
                bytes = Self.mutate(seeds[Int.random(in: 0..<seeds.count, using: &rng)], &rng)
            }
            switch decodeOutcome(bytes) {
            case .failure(let error):
                codes[error.code, default: 0] += 1
            case .otherError(let error):
                Issue.record("iteration \(i): non-protocol error \(error)")
            case .frame(let frame):
                accepted += 1
                let again = try frame.encode()
                #expect(again == bytes, "iteration \(i): a decoded \(frame.message.kind) frame re-encodes differently")
            }
        }
        // Some mutations are harmless (payload bytes, ids), most are caught, by many different checks.
        #expect(accepted > 100)
        #expect(accepted < iterations / 2)
        #expect(codes.count >= 12, "codes seen: \(codes)")
        for code: ProtocolErrorCode in [
            .badMagic, .truncated, .lengthMismatch, .reservedNotZero, .badTensor, .invalidValue, .limitExceeded,
        ] {
            #expect(codes[code, default: 0] > 0, "no \(code) among \(codes)")
        }
    }
}
