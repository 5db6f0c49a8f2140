import Foundation
import L2PDProtocol
import L2PDStageIO
import Testing

/// The frames written by `scripts/make_proto_vectors.py` (an independent NumPy/struct encoder)
/// and the values they carry, from `proto/vectors/vectors.json`.
enum Golden {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("proto").appendingPathComponent("vectors")

    struct Sequence: Decodable {
        var id: String
        var length: Int
        var computed: [Int]
        var cache: String
        var reads: [Int]
        var temperatureBits: UInt32
        var seed: String
        var step: Int
        var eos: Bool
        var topK: Int
    }
    struct HelloValues: Decodable {
        var version: UInt16
        var role: String
        var fingerprint: String
        var nonce: String
        var name: String
    }
    struct ShardValues: Decodable {
        var fingerprint: String
        var totalLayers: Int
        var layers: [Int]
        var embeds: Bool
        var readsOut: Bool
        var url: String
    }
    struct HiddenValues: Decodable {
        var dModel: Int
        var bits: [UInt32]
    }
    struct ReadoutValues: Decodable {
        var id: String
        var positions: [Int]
        var tokens: [Int]
        var confidenceBits: [UInt32]
        var eosBits: [UInt32]
        var topTokens: [Int]
        var topProbabilityBits: [UInt32]
    }
    struct ErrorValues: Decodable {
        var code: UInt16
        var text: String
    }
    struct Vector: Decodable {
        var size: Int
        var expectError: UInt16?
        var kind: String?
        var requestId: String?
        var step: UInt32?
        var hello: HelloValues?
        var shardAssignment: ShardValues?
        var sequences: [Sequence]?
        var tokens: [Int]?
        var hidden: HiddenValues?
        var readouts: [ReadoutValues]?
        var ids: [String]?
        var nonce: String?
        var weightBytes: String?
        var cacheBytes: String?
        var error: ErrorValues?
        var route: [String]?
    }

    static let vectors: [String: Vector] = {
        do {
            let data = try Data(contentsOf: directory.appendingPathComponent("vectors.json"))
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode([String: Vector].self, from: data)
        } catch {
            return [:]
        }
    }()

    static var goodNames: [String] { vectors.filter { $0.value.expectError == nil }.keys.sorted() }
    static var badNames: [String] { vectors.filter { $0.value.expectError != nil }.keys.sorted() }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: directory.appendingPathComponent(name + ".bin")))
    }

    static func u64(_ hex: String) -> UInt64 { UInt64(hex.dropFirst(2), radix: 16) ?? 0xDEAD }
    static func floats(_ bits: [UInt32]) -> [Float] { bits.map(Float.init(bitPattern:)) }

    static func sequence(_ s: Sequence) -> SequenceForward {
        let cache: CacheDirective = ["none": .none, "refresh": .refresh, "reuse": .reuse][s.cache]!
        return SequenceForward(
            sequenceID: u64(s.id), length: s.length, computed: s.computed[0]..<s.computed[1], cache: cache, readPositions: s.reads,
            sampling: Sampling(temperature: Float(bitPattern: s.temperatureBits), seed: u64(s.seed), step: s.step),
            wantsEOSProbability: s.eos, topK: s.topK)
    }

    /// The frame the JSON describes, built with the Swift types.
    static func expectedFrame(_ v: Vector) -> Frame? {
        let message: Message
        switch v.kind {
        case "hello":
            guard let h = v.hello else { return nil }
            message = .hello(
                Hello(
                    protocolVersion: h.version, role: ["coordinator": .coordinator, "worker": .worker, "stage": .stage][h.role]!,
                    modelFingerprint: u64(h.fingerprint),
                    nonce: u64(h.nonce), name: h.name))
        case "shard_assignment":
            guard let s = v.shardAssignment else { return nil }
            var assignment = ShardAssignment(
                modelFingerprint: u64(s.fingerprint), totalLayers: s.totalLayers, layers: s.layers[0]..<s.layers[1], nextStageURL: s.url)
            assignment.embeds = s.embeds
            assignment.readsOut = s.readsOut
            message = .shardAssignment(assignment)
        case "forward", "chained_forward":
            guard let sequences = v.sequences else { return nil }
            let input: ForwardInput
            if let tokens = v.tokens {
                input = .tokens(tokens)
            } else if let h = v.hidden {
                input = .hidden(HiddenTensor(dModel: h.dModel, values: floats(h.bits)))
            } else {
                return nil
            }
            let forward = ForwardRequest(batch: sequences.map(sequence), input: input)
            if v.kind == "chained_forward" {
                guard let route = v.route else { return nil }
                message = .chainedForward(ChainedForward(route: route, forward: forward))
            } else {
                message = .forward(forward)
            }
        case "hidden_states":
            guard let sequences = v.sequences, let h = v.hidden else { return nil }
            message = .hiddenStates(
                HiddenStates(batch: sequences.map(sequence), hidden: HiddenTensor(dModel: h.dModel, values: floats(h.bits))))
        case "readout":
            guard let readouts = v.readouts else { return nil }
            message = .readout(
                ReadoutReply(
                    sequences: readouts.map { r in
                        SequenceReadout(
                            sequenceID: u64(r.id),
                            readout: Readout(
                                positions: r.positions, tokens: r.tokens, confidences: floats(r.confidenceBits),
                                eosProbabilities: floats(r.eosBits), topTokens: r.topTokens, topProbabilities: floats(r.topProbabilityBits))
                        )
                    }))
        case "release_cache":
            guard let ids = v.ids else { return nil }
            message = .releaseCache(ids.map(u64))
        case "ping": message = .ping(nonce: u64(v.nonce ?? ""))
        case "pong": message = .pong(nonce: u64(v.nonce ?? ""), weightBytes: u64(v.weightBytes ?? ""), cacheBytes: u64(v.cacheBytes ?? ""))
        case "error":
            guard let e = v.error else { return nil }
            message = .error(ErrorReport(code: e.code, text: e.text))
        default:
            return nil
        }
        return Frame(requestID: u64(v.requestId ?? ""), step: v.step ?? 0, message: message)
    }
}

@Suite struct GoldenFrameTests {
    @Test func vectorsArePresent() {
        #expect(Golden.goodNames.count >= 13)
        #expect(Golden.badNames.count >= 10)
        let kinds = Set(Golden.goodNames.compactMap { Golden.vectors[$0]?.kind })
        #expect(
            kinds == [
                "hello", "shard_assignment", "forward", "hidden_states", "readout", "release_cache", "ping", "pong", "error",
                "chained_forward",
            ])
    }

    @Test(arguments: Golden.goodNames)
    func goldenFrameDecodesAndReencodes(name: String) throws {
        let vector = try #require(Golden.vectors[name])
        let bytes = try Golden.bytes(name)
        #expect(bytes.count == vector.size)
        let expected = try #require(Golden.expectedFrame(vector))
        let decoded = try Frame.decode(bytes)
        #expect(decoded == expected)
        #expect(try decoded.encode() == bytes)
        #expect(try expected.encode() == bytes)
        #expect(try expected.encodedCount() == bytes.count)
    }

    @Test(arguments: Golden.badNames)
    func badFrameIsRejectedWithItsCode(name: String) throws {
        let vector = try #require(Golden.vectors[name])
        let bytes = try Golden.bytes(name)
        switch decodeOutcome(bytes) {
        case .frame(let frame): Issue.record("\(name) decoded to \(frame)")
        case .otherError(let error): Issue.record("\(name) threw a non-protocol error \(error)")
        case .failure(let error):
            #expect(error.code.rawValue == vector.expectError, "\(name): \(error)")
            #expect(!error.description.isEmpty)
        }
    }

    @Test func hiddenBlockKeepsSpecialValuesBitExact() throws {
        let frame = try Frame.decode(try Golden.bytes("hidden_block"))
        guard case .hiddenStates(let h) = frame.message else {
            Issue.record("not hidden states")
            return
        }
        #expect(h.hidden.dModel == 128)
        #expect(h.hidden.rows == 32)
        #expect(h.hidden.values[0].bitPattern == 0)
        #expect(h.hidden.values[1].bitPattern == 0x8000_0000)
        #expect(h.hidden.values[2] == .infinity)
        #expect(h.hidden.values[3] == -.infinity)
        #expect(h.batch[0].computed == 64..<96)
        #expect(h.batch[0].readPositions == Array(64..<96))
    }

    @Test func errorAnswerEchoesIdentityOnlyWithValidHeader() throws {
        let ping = try Golden.bytes("ping")
        ping.withUnsafeBytes { #expect(FrameHeader.replyIdentity(for: $0) == (UInt64.max, UInt32.max)) }
        let badMagic = try Golden.bytes("bad_magic")
        badMagic.withUnsafeBytes { #expect(FrameHeader.replyIdentity(for: $0) == (0, 0)) }
        let badVersion = try Golden.bytes("bad_version")
        badVersion.withUnsafeBytes { #expect(FrameHeader.replyIdentity(for: $0) == (0, 0)) }
        let readOutside = try Golden.bytes("bad_read_outside")
        readOutside.withUnsafeBytes { #expect(FrameHeader.replyIdentity(for: $0) == (10, 5)) }
    }
}
