import Foundation
import L2PDStageIO
import Testing

@testable import L2PDModel

/// Golden logits written by `scripts/make_model_fixtures.py` from an independent NumPy
/// implementation of the LLaDA forward pass.
struct GoldenCase: Decodable {
    let name: String
    let kind: String
    let tokens: [Int]
    let logits: [[Double]]
    let hidden: [[Double]]?
    let split_layer: Int?
    let cache_tokens: [Int]?
    let start: Int?
    let end: Int?
}

struct GoldenFile: Decodable {
    let logits_columns: Int
    let cases: [GoldenCase]
}

enum Fixtures {
    static func directory(_ name: String) -> URL {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(name)
    }

    static func golden(_ name: String) throws -> GoldenFile {
        try JSONDecoder().decode(GoldenFile.self, from: Data(contentsOf: directory(name).appendingPathComponent("golden.json")))
    }

    static func wholeModel(_ name: String) throws -> Stage {
        let checkpoint = try Checkpoint(directory: directory(name))
        return Stage(weights: try StageWeights(checkpoint: checkpoint, layers: 0..<checkpoint.config.layers))
    }
}

/// Largest absolute difference between Swift logits (flat) and golden rows.
func maxDifference(_ logits: [Float], _ golden: [[Double]]) -> Double {
    let columns = golden.first?.count ?? 0
    #expect(logits.count == golden.count * columns)
    var worst = 0.0
    for (r, row) in golden.enumerated() {
        for (j, value) in row.enumerated() { worst = max(worst, abs(Double(logits[r * columns + j]) - value)) }
    }
    return worst
}

let tolerance = 1e-4

@Test(arguments: ["tiny-llada", "tiny-llada-bf16", "tiny-llada-f16", "tiny-llada-sharded", "tiny-llada-tied"])
func fullForwardMatchesReference(checkpoint name: String) throws {
    let stage = try Fixtures.wholeModel(name)
    for golden in try Fixtures.golden(name).cases where golden.kind == "full" {
        let n = golden.tokens.count
        let request = SequenceForward(sequenceID: 1, length: n, readPositions: Array(0..<n))
        let logits = try stage.forwardLogits([request], input: .tokens(golden.tokens))
        #expect(maxDifference(logits, golden.logits) < tolerance, "\(name) \(golden.name)")
    }
}

@Test func batchOfDifferentLengthsMatchesReferencePerSequence() throws {
    let stage = try Fixtures.wholeModel("tiny-llada")
    let cases = try Fixtures.golden("tiny-llada").cases.filter { $0.kind == "full" }
    #expect(cases.count == 2 && cases[0].tokens.count != cases[1].tokens.count)
    let batch = cases.enumerated().map { i, c in
        SequenceForward(sequenceID: UInt64(i), length: c.tokens.count, readPositions: Array(0..<c.tokens.count))
    }
    let logits = try stage.forwardLogits(batch, input: .tokens(cases.flatMap(\.tokens)))
    let split = cases[0].tokens.count * 320
    #expect(maxDifference(Array(logits[..<split]), cases[0].logits) < tolerance)
    #expect(maxDifference(Array(logits[split...]), cases[1].logits) < tolerance)
}

@Test func twoStageSplitMatchesReference() throws {
    let checkpoint = try Checkpoint(directory: Fixtures.directory("tiny-llada"))
    let golden = try #require(try Fixtures.golden("tiny-llada").cases.first { $0.kind == "split" })
    let k = try #require(golden.split_layer)
    let first = Stage(weights: try StageWeights(checkpoint: checkpoint, layers: 0..<k))
    let last = Stage(weights: try StageWeights(checkpoint: checkpoint, layers: k..<checkpoint.config.layers))
    let n = golden.tokens.count
    let request = SequenceForward(sequenceID: 9, length: n, readPositions: Array(0..<n))
    guard case .hidden(let hidden) = try first.forward([request], input: .tokens(golden.tokens)) else {
        Issue.record("first stage must return hidden states")
        return
    }
    #expect(maxDifference(hidden, try #require(golden.hidden)) < tolerance)
    let logits = try last.forwardLogits([request], input: .hidden(hidden))
    #expect(maxDifference(logits, golden.logits) < tolerance)
}

@Test(arguments: ["dual_cache", "prefix_cache"])
func cachedStepMatchesReference(caseName: String) throws {
    let stage = try Fixtures.wholeModel("tiny-llada")
    let golden = try #require(try Fixtures.golden("tiny-llada").cases.first { $0.name == caseName })
    let before = try #require(golden.cache_tokens)
    let range = try #require(golden.start)..<(try #require(golden.end))
    let n = before.count
    _ = try stage.forward([SequenceForward(sequenceID: 3, length: n, cache: .refresh, readPositions: [0])], input: .tokens(before))
    let step = SequenceForward(sequenceID: 3, length: n, computed: range, cache: .reuse, readPositions: Array(range))
    let logits = try stage.forwardLogits([step], input: .tokens(Array(golden.tokens[range])))
    #expect(maxDifference(logits, golden.logits) < tolerance)
    stage.release(3)
    #expect(stage.cachedSequenceCount == 0)
    #expect(throws: StageError.missingCache(sequenceID: 3)) {
        try stage.forward([step], input: .tokens(Array(golden.tokens[range])))
    }
}

@Test func readoutIsArgmaxAndSoftmaxProbabilityOfReferenceLogits() throws {
    let stage = try Fixtures.wholeModel("tiny-llada")
    let golden = try #require(try Fixtures.golden("tiny-llada").cases.first { $0.name == "full_23" })
    let n = golden.tokens.count
    let positions = [0, 5, 22, 13]
    let request = SequenceForward(sequenceID: 1, length: n, readPositions: positions, wantsEOSProbability: true, topK: 3)
    guard case .readouts(let readouts) = try stage.forward([request], input: .tokens(golden.tokens)) else {
        Issue.record("last stage must return readouts")
        return
    }
    let readout = readouts[0]
    #expect(readout.positions == positions)
    for (i, p) in positions.enumerated() {
        let row = golden.logits[p]
        let top = row.max()!
        let total = row.reduce(0) { $0 + Foundation.exp($1 - top) }
        let best = row.firstIndex(of: top)!
        #expect(readout.tokens[i] == best)
        #expect(abs(Double(readout.confidences[i]) - 1 / total) < 1e-5)
        #expect(abs(Double(readout.eosProbabilities[i]) - Foundation.exp(row[298] - top) / total) < 1e-5)
        let ranked = row.indices.sorted { row[$0] > row[$1] }
        #expect(Array(readout.topTokens[(3 * i)..<(3 * i + 3)]) == Array(ranked.prefix(3)))
        #expect(abs(Double(readout.topProbabilities[3 * i + 1]) - Foundation.exp(row[ranked[1]] - top) / total) < 1e-5)
    }
}

@Test func temperatureSamplingIsSeededAndIndependentOfBatching() throws {
    let stage = try Fixtures.wholeModel("tiny-llada")
    let tokens = try Fixtures.golden("tiny-llada").cases[1].tokens
    let n = tokens.count
    func sample(seed: UInt64, positions: [Int]) throws -> [Int] {
        let request = SequenceForward(
            sequenceID: 1, length: n, readPositions: positions, sampling: Sampling(temperature: 1, seed: seed, step: 4))
        guard case .readouts(let r) = try stage.forward([request], input: .tokens(tokens)) else { return [] }
        return r[0].tokens
    }
    let all = Array(0..<n)
    let first = try sample(seed: 11, positions: all)
    #expect(try sample(seed: 11, positions: all) == first)
    #expect(try sample(seed: 11, positions: [7, 3]) == [first[7], first[3]])
    // A different seed must change some of 23 samples at temperature 1 on near-flat logits.
    #expect(try sample(seed: 12, positions: all) != first)
}

@Test func stageLoadsOnlyItsLayers() throws {
    let checkpoint = try Checkpoint(directory: Fixtures.directory("tiny-llada"))
    let whole = try StageWeights(checkpoint: checkpoint, layers: 0..<3)
    let middle = try StageWeights(checkpoint: checkpoint, layers: 1..<2)
    #expect(middle.embedding == nil && middle.head == nil && middle.blocks.count == 1)
    #expect(middle.parameterCount * 3 < whole.parameterCount)
    #expect(throws: CheckpointError.invalidLayerRange(lower: 2, upper: 4, layers: 3)) {
        try StageWeights(checkpoint: checkpoint, layers: 2..<4)
    }
}
