import Foundation
import L2PDProtocol
import L2PDStageIO

/// SplitMix64: a small seeded generator so every run sees the same random messages.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Decodes `bytes`, returning the frame or the protocol error; any other error is a test failure.
enum Outcome {
    case frame(Frame)
    case failure(ProtocolError)
    case otherError(any Error)
}

func decodeOutcome(_ bytes: [UInt8]) -> Outcome {
    do {
        return .frame(try Frame.decode(bytes))
    } catch let error as ProtocolError {
        return .failure(error)
    } catch {
        return .otherError(error)
    }
}

func encodeError(_ frame: Frame) -> ProtocolError? {
    do {
        _ = try frame.encode()
        return nil
    } catch {
        return error as? ProtocolError
    }
}

/// Random valid messages of every kind.
struct MessageFactory {
    var rng: SeededGenerator

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func bool() -> Bool { Bool.random(using: &rng) }
    mutating func u64() -> UInt64 { rng.next() }
    mutating func probability() -> Float { Float.random(in: 0...1, using: &rng) }

    mutating func text(maxLength: Int) -> String {
        let alphabet = Array("abc xyz-:/.0123456789é∂🙂\u{0}")
        return String((0..<int(0...maxLength)).map { _ in alphabet[int(0...(alphabet.count - 1))] })
    }

    /// Reads inside `computed`: a contiguous block, scattered positions, or none.
    mutating func reads(in computed: Range<Int>) -> [Int] {
        switch int(0...3) {
        case 0: return []
        case 1: return Array(computed)
        case 2:
            let start = int(computed.lowerBound...(computed.upperBound - 1))
            return Array(start..<int((start + 1)...computed.upperBound))
        default: return (0..<int(1...12)).map { _ in int(computed.lowerBound...(computed.upperBound - 1)) }
        }
    }

    mutating func sequence(id: UInt64) -> SequenceForward {
        let length = int(1...300)
        let cache = CacheDirective(rawValue: UInt8(int(0...2)))!
        var computed = 0..<length
        if cache == .reuse {
            let start = int(0...(length - 1))
            computed = start..<int((start + 1)...length)
        }
        let temperature: Float = bool() ? 0 : Float.random(in: 0...2, using: &rng)
        return SequenceForward(
            sequenceID: id, length: length, computed: computed, cache: cache, readPositions: reads(in: computed),
            sampling: Sampling(temperature: temperature, seed: u64(), step: int(0...Int(UInt32.max))),
            wantsEOSProbability: bool(), topK: int(0...3) == 0 ? int(0...256) : 0)
    }

    mutating func batch() -> [SequenceForward] {
        var ids = Set<UInt64>()
        while ids.count < int(1...5) { ids.insert(bool() ? u64() : UInt64(int(0...20))) }
        return ids.sorted().map { sequence(id: $0) }
    }

    mutating func hidden(rows: Int) -> HiddenTensor {
        let d = int(1...24)
        return HiddenTensor(dModel: d, values: (0..<(rows * d)).map { _ in Float.random(in: -8...8, using: &rng) })
    }

    mutating func readout(positions: [Int]) -> Readout {
        let n = positions.count
        let k = n > 0 && bool() ? int(1...4) : 0
        return Readout(
            positions: positions, tokens: (0..<n).map { _ in int(0...126_463) }, confidences: (0..<n).map { _ in probability() },
            eosProbabilities: n > 0 && bool() ? (0..<n).map { _ in probability() } : [],
            topTokens: (0..<(n * k)).map { _ in int(0...126_463) }, topProbabilities: (0..<(n * k)).map { _ in probability() })
    }

    mutating func message(_ kind: MessageKind) -> Message {
        switch kind {
        case .hello:
            return .hello(
                Hello(
                    protocolVersion: UInt16(int(1...3)), role: PeerRole.allCases[int(0...(PeerRole.allCases.count - 1))],
                    modelFingerprint: u64(), nonce: u64(),
                    name: text(maxLength: 40)))
        case .shardAssignment:
            let total = int(1...80)
            let first = int(0...(total - 1))
            let end = int((first + 1)...total)
            let url = end == total && bool() ? "" : "tcp://10.0.\(int(0...255)).\(int(0...255)):\(int(1024...65535))"
            return .shardAssignment(ShardAssignment(modelFingerprint: u64(), totalLayers: total, layers: first..<end, nextStageURL: url))
        case .forward:
            return .forward(forward())
        case .chainedForward:
            let route = (0..<int(0...3)).map { _ in
                bool() ? "tcp://10.0.\(int(0...255)).\(int(0...255)):\(int(1024...65535))" : "tls+tcp://stage-\(int(0...99)).example:7701"
            }
            return .chainedForward(ChainedForward(route: route, forward: forward()))
        case .hiddenStates:
            let batch = batch()
            return .hiddenStates(HiddenStates(batch: batch, hidden: hidden(rows: batch.reduce(0) { $0 + $1.computed.count })))
        case .readout:
            return .readout(
                ReadoutReply(
                    sequences: batch().map { s in
                        SequenceReadout(sequenceID: s.sequenceID, readout: readout(positions: s.readPositions))
                    }))
        case .releaseCache:
            var ids = Set<UInt64>()
            let count = int(0...20)
            while ids.count < count { ids.insert(u64()) }
            return .releaseCache(Array(ids))
        case .ping: return .ping(nonce: u64())
        case .pong: return .pong(nonce: u64(), weightBytes: u64(), cacheBytes: u64())
        case .error:
            return .error(ErrorReport(code: UInt16(int(1...Int(UInt16.max))), text: text(maxLength: 80)))
        }
    }

    mutating func forward() -> ForwardRequest {
        let batch = batch()
        let rows = batch.reduce(0) { $0 + $1.computed.count }
        let input: ForwardInput = bool() ? .tokens((0..<rows).map { _ in int(0...Int(Int32.max)) }) : .hidden(hidden(rows: rows))
        return ForwardRequest(batch: batch, input: input)
    }

    mutating func frame(_ kind: MessageKind) -> Frame {
        Frame(requestID: u64(), step: UInt32(truncatingIfNeeded: u64()), message: message(kind))
    }
}
