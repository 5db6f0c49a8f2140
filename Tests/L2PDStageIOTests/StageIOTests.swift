import L2PDStageIO
import Testing

@Suite struct StageIOTests {
    let request = SequenceForward(sequenceID: 7, length: 10, readPositions: [4, 5, 6], wantsEOSProbability: true, topK: 2)

    func answer() -> Readout {
        Readout(
            positions: [4, 5, 6], tokens: [1, 2, 3], confidences: [0.5, 1, 0], eosProbabilities: [0, 0.25, 1],
            topTokens: [1, 9, 2, 8, 3, 7], topProbabilities: [0.5, 0.1, 1, 0, 0, 0])
    }

    @Test func aSequenceComputesItsWholeCanvasUnlessToldOtherwise() {
        #expect(request.computed == 0..<10)
        #expect(request.cache == .none && request.sampling == .greedy)
        #expect(SequenceForward(sequenceID: 1, length: 10, computed: 3..<5, cache: .reuse).computed == 3..<5)
    }

    /// The raw values go on the wire (proto/PROTOCOL.md): they must not move.
    @Test func cacheDirectivesKeepTheirWireValues() {
        #expect(CacheDirective.allCases.map(\.rawValue) == [0, 1, 2])
        #expect(CacheDirective(rawValue: 3) == nil)
    }

    @Test func aWellFormedReadoutHasNoProblem() {
        #expect(answer().problem(answering: request, vocabulary: 10) == nil)
    }

    /// Each way a reply can be wrong is named; none passes.
    @Test(
        arguments: [
            ("positions", { @Sendable (r: inout Readout) in r.positions = [4, 6, 5] }),
            ("missing token", { @Sendable (r: inout Readout) in r.tokens.removeLast() }),
            ("token beyond vocabulary", { @Sendable (r: inout Readout) in r.tokens[1] = 10 }),
            ("negative token", { @Sendable (r: inout Readout) in r.tokens[0] = -1 }),
            ("NaN confidence", { @Sendable (r: inout Readout) in r.confidences[2] = .nan }),
            ("confidence above 1", { @Sendable (r: inout Readout) in r.confidences[0] = 1.0001 }),
            ("eos count", { @Sendable (r: inout Readout) in r.eosProbabilities = [0.5] }),
            ("eos infinite", { @Sendable (r: inout Readout) in r.eosProbabilities[1] = .infinity }),
            ("top-k count", { @Sendable (r: inout Readout) in r.topTokens.removeLast() }),
            ("top-k token", { @Sendable (r: inout Readout) in r.topTokens[3] = 99 }),
            ("top-k probability", { @Sendable (r: inout Readout) in r.topProbabilities[5] = -0.5 }),
        ] as [(String, @Sendable (inout Readout) -> Void)])
    func everyMalformedFieldIsNamed(name: String, breakIt: @Sendable (inout Readout) -> Void) {
        var readout = answer()
        breakIt(&readout)
        #expect(readout.problem(answering: request, vocabulary: 10) != nil, "\(name)")
    }
}
