import L2PDProtocol
import L2PDStageIO
import Testing

@Suite struct RoundTripTests {
    @Test(arguments: MessageKind.allCases)
    func randomMessagesRoundTrip(kind: MessageKind) throws {
        var factory = MessageFactory(rng: SeededGenerator(seed: 0x5EED_0000 + UInt64(kind.rawValue)))
        var reused: [UInt8] = []
        for _ in 0..<200 {
            let frame = factory.frame(kind)
            let bytes = try frame.encode()
            #expect(bytes.count == (try frame.encodedCount()))
            #expect(bytes.count % 8 == 0)
            #expect(try Frame.decode(bytes) == frame)
            // The other two ways of encoding give the same bytes.
            try frame.encode(into: &reused)
            #expect(reused == bytes)
            var raw = [UInt8](repeating: 0xAB, count: bytes.count + 5)
            let written = try raw.withUnsafeMutableBytes { try frame.encode(into: $0) }
            #expect(written == bytes.count)
            #expect(Array(raw[0..<written]) == bytes)
        }
    }

    @Test func tensorPayloadsAreSixteenByteAligned() throws {
        var factory = MessageFactory(rng: SeededGenerator(seed: 99))
        for _ in 0..<50 {
            let bytes = try factory.frame(.hiddenStates).encode()
            #expect(bytes.count % 16 == 0)
            guard case .hiddenStates(let h) = try Frame.decode(bytes).message else {
                Issue.record("not hidden states")
                return
            }
            // The payload is the frame's last 4 * count bytes up to padding.
            let payload = 4 * h.hidden.values.count
            let padded = (payload + 15) / 16 * 16
            #expect((bytes.count - padded) % 16 == 0)
        }
    }

    @Test func decodedStageInputMatchesModelTypes() throws {
        let batch = [SequenceForward(sequenceID: 1, length: 4, readPositions: [2, 3])]
        let frame = Frame(requestID: 1, message: .forward(ForwardRequest(batch: batch, input: .tokens([5, 6, 7, 8]))))
        guard case .forward(let f) = try Frame.decode(try frame.encode()).message, case .tokens(let tokens) = f.input.stageInput else {
            Issue.record("not a token forward")
            return
        }
        #expect(tokens == [5, 6, 7, 8])
        #expect(f.batch == batch)
    }

    @Test func encoderRejectsValuesTheDecoderWouldReject() {
        func forward(_ s: SequenceForward, tokens: [Int]? = nil) -> Frame {
            Frame(
                requestID: 1,
                message: .forward(ForwardRequest(batch: [s], input: .tokens(tokens ?? Array(repeating: 1, count: s.computed.count)))))
        }
        let good = SequenceForward(sequenceID: 1, length: 8, readPositions: [1, 2])
        #expect(encodeError(forward(good)) == nil)
        var outside = good
        outside.cache = .reuse
        outside.computed = 2..<4
        outside.readPositions = [1]
        #expect(encodeError(forward(outside))?.code == .readPositionOutside)
        var partial = good
        partial.computed = 2..<4
        #expect(encodeError(forward(partial))?.code == .invalidRange)
        var hot = good
        hot.sampling.temperature = .nan
        #expect(encodeError(forward(hot))?.code == .invalidValue)
        var wideK = good
        wideK.topK = 257
        #expect(encodeError(forward(wideK))?.code == .limitExceeded)
        var negativeStep = good
        negativeStep.sampling.step = -1
        #expect(encodeError(forward(negativeStep))?.code == .invalidValue)
        #expect(encodeError(forward(good, tokens: [1, 2, 3]))?.code == .badTensor)
        #expect(encodeError(forward(good, tokens: [1, 2, 3, 4, 5, 6, 7, -1]))?.code == .invalidValue)
        #expect(
            encodeError(
                Frame(requestID: 1, message: .forward(ForwardRequest(batch: [good, good], input: .tokens(Array(repeating: 0, count: 16))))))?
                .code == .duplicateSequence)
        #expect(encodeError(Frame(requestID: 1, message: .forward(ForwardRequest(batch: [], input: .tokens([])))))?.code == .invalidValue)
        let tooMany = (0..<257).map { SequenceForward(sequenceID: UInt64($0), length: 1) }
        #expect(
            encodeError(
                Frame(requestID: 1, message: .forward(ForwardRequest(batch: tooMany, input: .tokens(Array(repeating: 0, count: 257))))))?
                .code == .limitExceeded)

        let long = String(repeating: "x", count: 4097)
        #expect(encodeError(Frame(requestID: 1, message: .error(ErrorReport(.internal, text: long))))?.code == .limitExceeded)
        #expect(encodeError(Frame(requestID: 1, message: .error(ErrorReport(code: 0, text: ""))))?.code == .invalidValue)
        var shard = ShardAssignment(modelFingerprint: 1, totalLayers: 4, layers: 0..<2, nextStageURL: "")
        #expect(encodeError(Frame(requestID: 1, message: .shardAssignment(shard)))?.code == .invalidValue)
        shard.nextStageURL = "tcp://a:1"
        shard.embeds = false
        #expect(encodeError(Frame(requestID: 1, message: .shardAssignment(shard)))?.code == .invalidValue)
        #expect(
            encodeError(
                Frame(
                    requestID: 1,
                    message: .shardAssignment(ShardAssignment(modelFingerprint: 1, totalLayers: 4, layers: 2..<5, nextStageURL: ""))))?
                .code == .invalidRange)

        func readoutCode(_ r: Readout) -> ProtocolErrorCode? {
            let reply = ReadoutReply(sequences: [SequenceReadout(sequenceID: 1, readout: r)])
            return encodeError(Frame(requestID: 1, message: .readout(reply)))?.code
        }
        #expect(readoutCode(Readout(positions: [1, 2], tokens: [3], confidences: [0.5, 0.5])) == .badTensor)
        #expect(readoutCode(Readout(positions: [1], tokens: [3], confidences: [-0.5])) == .invalidValue)
        #expect(readoutCode(Readout(positions: [1], tokens: [3], confidences: [0.5], topTokens: [1], topProbabilities: [])) == .badTensor)
        #expect(readoutCode(Readout(positions: [-1], tokens: [3], confidences: [0.5])) == .invalidRange)
        #expect(encodeError(Frame(requestID: 1, message: .releaseCache([4, 4])))?.code == .duplicateSequence)
    }

    @Test func bufferTooSmallIsAnErrorNotATrap() throws {
        let frame = Frame(requestID: 1, message: .ping(nonce: 7))
        var small = [UInt8](repeating: 0, count: 31)
        #expect(throws: ProtocolError.self) { try small.withUnsafeMutableBytes { try frame.encode(into: $0) } }
        #expect((try? Frame.decode([])) == nil)
    }
}

/// The size requirements: hidden-state overhead under 1 % for a 32-position block at
/// d_model 128, readouts at most 8 bytes per position plus a fixed header.
@Suite struct OverheadTests {
    static func blockFrame(dModel: Int) -> Frame {
        let s = SequenceForward(
            sequenceID: 42, length: 256, computed: 64..<96, cache: .reuse, readPositions: Array(64..<96),
            sampling: Sampling(temperature: 0.5, seed: 7, step: 3), wantsEOSProbability: true, topK: 2)
        return Frame(
            requestID: 9, step: 3,
            message: .hiddenStates(
                HiddenStates(batch: [s], hidden: HiddenTensor(dModel: dModel, values: Array(repeating: 0.25, count: 32 * dModel)))))
    }

    @Test func headerIsTwentyFourBytes() throws {
        #expect(ProtocolLimits.headerBytes == 24)
        #expect(try Frame(requestID: 1, message: .ping(nonce: 1)).encode().count == 24 + 8)
    }

    @Test func hiddenBlockOverheadIsUnderOnePercent() throws {
        let size = try Self.blockFrame(dModel: 128).encode().count
        let payload = 32 * 128 * 4
        #expect(payload == 16_384)
        #expect(size - payload == 112)
        #expect(size - payload < 163)
        #expect(Double(size - payload) / Double(payload) < 0.01)
        // The overhead does not depend on d_model.
        for d in [16, 64, 256, 4096] {
            #expect(try Self.blockFrame(dModel: d).encode().count - 32 * d * 4 == 112)
        }
    }

    static func readoutFrame(positions: [Int]) -> Frame {
        let n = positions.count
        let readout = Readout(positions: positions, tokens: Array(repeating: 17, count: n), confidences: Array(repeating: 0.5, count: n))
        return Frame(requestID: 9, message: .readout(ReadoutReply(sequences: [SequenceReadout(sequenceID: 42, readout: readout)])))
    }

    @Test func readoutCostsEightBytesPerPositionPlusFixedHeader() throws {
        #expect(try Self.readoutFrame(positions: Array(64..<96)).encode().count == 112 + 8 * 32)
        for n in 1...300 {
            let size = try Self.readoutFrame(positions: Array(100..<(100 + n))).encode().count
            let fixed = size - 8 * n
            #expect(fixed >= 112 && fixed <= 136, "n = \(n): \(size) bytes")
            if n % 4 == 0 { #expect(fixed == 112, "n = \(n)") }
        }
        // Scattered reads cost 8 bytes per extra run: three extra runs add 24 bytes, 8 of which
        // fill what was alignment padding before the payloads.
        #expect(try Self.readoutFrame(positions: [1, 3, 5, 7]).encode().count == 112 + 8 * 4 + 24 - 8)
    }
}
