import Foundation
import L2PDDefaultModel
import L2PDFilter
import L2PDModel
import Testing

@testable import L2PDDecoding

/// Golden decodes from scripts/make_decoding_fixtures.py (the NumPy reference decoder,
/// float64) on the embedded default model.
struct GoldenDecodes: Decodable {
    struct Options: Decodable {
        let gen_length: Int
        let block_length: Int
        let steps: Int
        let policy: String
        let tau: Float
        let factor: Float
        let delta: Float?
        let cache: String
        let eotp: Bool
    }
    struct Run: Decodable {
        let prompt: [Int]
        let options: Options
        let answer: [Int]
        let nfe: Int
        let positions: Int
        let useful_tokens: Int
        let min_gap: Double
    }
    let runs: [Run]

    /// `L2PD_GOLDEN_DECODES=FILE` swaps in a larger golden file (for example 50 prompts at gen
    /// length 256 or 1024, written by the same script); the committed fixture is the default.
    static var override: String? { ProcessInfo.processInfo.environment["L2PD_GOLDEN_DECODES"] }

    static func load() throws -> GoldenDecodes {
        let url =
            override.map { URL(fileURLWithPath: $0) } ?? Bundle.module.resourceURL!.appendingPathComponent("Fixtures/golden-decodes.json")
        return try JSONDecoder().decode(GoldenDecodes.self, from: Data(contentsOf: url))
    }
}

func defaultCheckpoint() throws -> Checkpoint {
    try Checkpoint(directory: try #require(DefaultModel.directory))
}

func options(_ o: GoldenDecodes.Options) throws -> GenerationOptions {
    var settings = PolicyFactory.Settings()
    settings.threshold = o.tau
    settings.factor = o.factor
    settings.delta = o.delta ?? 0.25
    var options = GenerationOptions()
    options.genLength = o.gen_length
    options.blockLength = o.block_length
    options.steps = o.steps
    options.policy = try PolicyFactory.make(o.policy, settings: settings)
    options.cache = CacheMode(rawValue: o.cache)!
    options.eotp = o.eotp
    return options
}

/// Every golden run: same committed answer, NFE and positions as the reference, except where
/// the reference saw a decision margin under 1e-5 (float32 against float64 may then differ).
@Test(arguments: [[0..<1], [0..<2, 2..<4]])
func matchesTheReferenceDecoder(stages: [Range<Int>]) async throws {
    let golden = try GoldenDecodes.load()
    let checkpoint = try defaultCheckpoint()
    let ranges = stages.count == 1 ? [0..<checkpoint.config.layers] : stages
    let decoder = Decoder(pipeline: try InProcessPipeline(checkpoint: checkpoint, layerRanges: ranges))
    var nearTies = 0
    var exercised = (multiCommit: false, truncated: false)
    for (i, run) in golden.runs.enumerated() {
        let result = try await decoder.generate(prompt: run.prompt, options: try options(run.options), sequenceID: UInt64(i + 1))
        let same = result.canvas == run.answer && result.statistics.nfe == run.nfe && result.statistics.positions == run.positions
        if !same && run.min_gap < 1e-5 {
            nearTies += 1
            continue
        }
        let label = "\(run.options.policy) cache=\(run.options.cache) eotp=\(run.options.eotp) prompt #\(i)"
        #expect(result.canvas == run.answer, "\(label)")
        #expect(result.statistics.nfe == run.nfe, "\(label)")
        #expect(result.statistics.positions == run.positions, "\(label)")
        #expect(result.statistics.usefulTokens == run.useful_tokens, "\(label)")
        if run.nfe < run.options.gen_length / max(1, run.options.gen_length / run.options.steps) { exercised.multiCommit = true }
        let plain = golden.runs.first(where: {
            $0.prompt == run.prompt && !$0.options.eotp && $0.options.policy == run.options.policy && $0.options.cache == run.options.cache
        })
        if run.options.eotp, let plain, run.positions < plain.positions { exercised.truncated = true }
    }
    print(
        "golden decodes, \(stages.count) stage(s): \(golden.runs.count - nearTies) identical, \(nearTies) near ties of \(golden.runs.count)"
    )
    // Every mismatch must be a near tie (checked above); most runs must compare exactly.
    #expect(nearTies * 4 <= golden.runs.count, "near ties: \(nearTies) of \(golden.runs.count)")
    // The committed fixture must exercise what it claims to: parallel commits and EoTP truncation.
    if GoldenDecodes.override == nil { #expect(exercised.multiCommit && exercised.truncated) }
}

@Test func cachesAreReleasedWhenTheRequestEnds() async throws {
    let pipeline = try InProcessPipeline(checkpoint: try defaultCheckpoint(), layerRanges: [0..<2, 2..<4])
    let decoder = Decoder(pipeline: pipeline)
    for mode in [CacheMode.prefix, .dual] {
        var o = GenerationOptions()
        o.genLength = 64
        o.blockLength = 16
        o.cache = mode
        o.policy = ThresholdPolicy()
        _ = try await decoder.generate(prompt: [0, 3, 10, 20, 30], options: o, sequenceID: 7)
        #expect(await pipeline.cachedSequenceCount() == 0)
    }
}

@Test func oracleReproducesTheBaselineInFewerPasses() async throws {
    let decoder = Decoder(pipeline: try InProcessPipeline(checkpoint: try defaultCheckpoint()))
    let golden = try GoldenDecodes.load()
    let prompt = golden.runs[0].prompt
    var o = GenerationOptions()
    o.genLength = 64
    o.blockLength = 16
    let baseline = try await decoder.generate(prompt: prompt, options: o)
    o.policy = ExtremelyGreedyPolicy()
    o.reference = baseline.canvas
    let oracle = try await decoder.generate(prompt: prompt, options: o)
    #expect(oracle.canvas == baseline.canvas)
    #expect(oracle.statistics.nfe < baseline.statistics.nfe)
}

@Test func badRequestsAreRefusedWithTheFacts() async throws {
    let decoder = Decoder(pipeline: try InProcessPipeline(checkpoint: try defaultCheckpoint()))
    let maximum = decoder.pipeline.config.maxSequenceLength
    func error(_ prompt: [Int], _ change: (inout GenerationOptions) -> Void) async -> GenerationError? {
        var o = GenerationOptions()
        change(&o)
        do {
            _ = try await decoder.generate(prompt: prompt, options: o)
            return nil
        } catch {
            return error as? GenerationError
        }
    }
    #expect(await error([]) { _ in } == .emptyPrompt)
    #expect(await error([1, 2]) { $0.genLength = 100 } == .genLengthNotMultipleOfBlock(genLength: 100, blockLength: 32))
    #expect(await error([1, 2]) { $0.steps = 7 } == .stepsNotMultipleOfBlocks(steps: 7, blocks: 8))
    #expect(await error(Array(repeating: 7, count: maximum)) { _ in } == .contextTooLong(prompt: maximum, genLength: 256, maximum: maximum))
    #expect(await error([1, 1_000_000]) { _ in } == .tokenOutOfRange(token: 1_000_000, vocabulary: decoder.pipeline.config.embeddingSize))
    #expect(await error([1, 2]) { $0.policy = ExtremelyGreedyPolicy() } == .missingReference(policy: "egp"))
    #expect(throws: GenerationError.unknownPolicy("fastest")) { try PolicyFactory.make("fastest") }
    var settings = PolicyFactory.Settings()
    settings.threshold = 1.5
    #expect(throws: GenerationError.invalidParameter(name: "threshold", value: "1.5", expected: "in (0, 1]")) {
        try PolicyFactory.make("threshold", settings: settings)
    }
    settings.threshold = 0
    #expect(throws: GenerationError.invalidParameter(name: "threshold", value: "0.0", expected: "in (0, 1]")) {
        try PolicyFactory.make("threshold", settings: settings)
    }
    #expect(throws: GenerationError.missingFilter) { try PolicyFactory.make("learn2pd") }
}

/// The Fréchet-profile rule on confidences worked by hand: 0.99, 0.95, 0.90, 0.60 give
/// L_n - U_n = 0.98, 0.89, 0.74, 0.04 (L_4 = 3.44 - 3, U_4 = 0.4), so delta 0.25 commits three,
/// delta 0 all four, and a delta above 0.98 still commits the most confident one.
@Test(arguments: [(Float(0.25), [2, 0, 3]), (Float(0), [2, 0, 3, 1]), (Float(0.95), [2]), (Float(1), [2])] as [(Float, [Int])])
func frechetCommitsTheLargestPrefixAboveDelta(delta: Float, expected: [Int]) {
    let context = StepContext(
        block: 10..<15, masked: [true, true, true, true, false], tokens: [7, 7, 7, 7, 7], confidences: [0.95, 0.6, 0.99, 0.9, 1],
        margins: nil, scheduled: 1, stepInBlock: 0, step: 0, blockLength: 5, reference: nil, seed: 0)
    #expect(FrechetPolicy(delta: delta).decide(context).commit == expected)
}

/// The history input's layout, feature-major over a block of 4 with 3 positions left (EoTP
/// shortened it): confidence, masked, persistence over the cap, confidence change, margin,
/// end-of-text flag, then the share still masked and the step over the block length.
@Test func theHistoryFeaturesAreLaidOutFeatureByFeature() {
    let context = StepContext(
        block: 0..<3, masked: [true, false, true], tokens: [5, 9, 1], confidences: [0.5, 0.9, 0.8], margins: [0.1, 0.8, 0.7],
        scheduled: 1, stepInBlock: 2, step: 6, blockLength: 4, reference: nil, seed: 0, previousTokens: [5, 9, 2],
        previousConfidences: [0.25, 0.9, 0.4], persistence: [1, 6, 0], endOfText: 1)
    let input = context.filterInput(.history)
    #expect(input.count == 26)
    #expect(Array(input[0..<4]) == [0.5, 0.9, 0.8, 0])
    #expect(Array(input[4..<8]) == [1, 0, 1, 0])
    #expect(Array(input[8..<12]) == [0.25, 1, 0, 0])
    #expect(Array(input[12..<16]) == [0.25, 0, 0.8 - 0.4, 0])
    #expect(Array(input[16..<20]) == [0.1, 0.8, 0.7, 0])
    #expect(Array(input[20..<24]) == [0, 0, 1, 0])
    #expect(Array(input[24..<26]) == [0.5, 0.5])
    #expect(context.filterInput(.confidence) == [0.5, 0.9, 0.8, 0])
}

/// Records every context the decoder hands its policy, deciding like the baseline.
final class ContextLog: @unchecked Sendable {
    private let lock = NSLock()
    private var contexts: [StepContext] = []
    func append(_ c: StepContext) { lock.withLock { contexts.append(c) } }
    var all: [StepContext] { lock.withLock { contexts } }
}

struct LoggingPolicy: UnmaskPolicy {
    let name = "baseline"
    let log: ContextLog
    func decide(_ context: StepContext) -> UnmaskDecision {
        log.append(context)
        return LowConfidencePolicy().decide(context)
    }
}

/// The decoder hands each step the previous step's predictions of the same block: none at a
/// block's first step, and persistence counts that grow while a prediction stays the same.
@Test func theDecoderHandsPoliciesTheBlocksHistory() async throws {
    let decoder = Decoder(pipeline: try InProcessPipeline(checkpoint: try defaultCheckpoint()))
    let log = ContextLog()
    var o = GenerationOptions()
    o.genLength = 32
    o.blockLength = 16
    o.policy = LoggingPolicy(log: log)
    _ = try await decoder.generate(prompt: [0, 3, 290, 4, 278, 25, 21, 5, 3, 296, 4, 278], options: o)
    let contexts = log.all
    #expect(contexts.count == 32)
    var grew = false
    for (i, c) in contexts.enumerated() {
        #expect(c.endOfText == decoder.pipeline.config.eosTokenID)
        if c.stepInBlock == 0 {
            #expect(c.previousTokens == nil && c.previousConfidences == nil && c.persistence.allSatisfy { $0 == 0 })
            continue
        }
        let before = contexts[i - 1]
        #expect(c.previousTokens == before.tokens && c.previousConfidences == before.confidences)
        for p in c.tokens.indices {
            #expect(c.persistence[p] == (c.tokens[p] == before.tokens[p] ? before.persistence[p] + 1 : 0))
            if c.persistence[p] > 1 { grew = true }
        }
    }
    #expect(grew)
}

@Test func scheduleSpreadsTheRemainderOverTheFirstSteps() {
    #expect(Decoder.schedule(masked: 32, steps: 32) == Array(repeating: 1, count: 32))
    #expect(Decoder.schedule(masked: 10, steps: 4) == [3, 3, 2, 2])
    #expect(Decoder.schedule(masked: 3, steps: 5) == [1, 1, 1, 0, 0])
}

@Test func layerPlansCoverTheModelExactlyOnce() throws {
    #expect(LayerPlan.even(layers: 32, stages: 4) == [0..<8, 8..<16, 16..<24, 24..<32])
    for (layers, stages) in [(5, 2), (7, 3), (32, 5), (4, 4)] {
        let plan = LayerPlan.even(layers: layers, stages: stages)
        #expect(plan.count == stages && plan.first?.lowerBound == 0 && plan.last?.upperBound == layers)
        #expect(zip(plan, plan.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        #expect(plan.map(\.count).max()! - plan.map(\.count).min()! <= 1)
    }
    #expect(throws: (any Error).self) { try LayerPlan.validate([0..<2, 3..<4], layers: 4) }
    #expect(throws: (any Error).self) { try LayerPlan.validate([0..<3, 2..<4], layers: 4) }
    #expect(throws: (any Error).self) { try LayerPlan.validate([0..<3], layers: 4) }
}

/// Concurrent requests whose forward passes share batches (different prompts, cache modes and
/// policies in one batch) commit exactly what each commits alone.
@Test func batchedRequestsCommitWhatTheyCommitAlone() async throws {
    let checkpoint = try defaultCheckpoint()
    let golden = try GoldenDecodes.load()
    var prompts: [[Int]] = []
    for run in golden.runs where !prompts.contains(run.prompt) { prompts.append(run.prompt) }
    var jobs: [(prompt: [Int], options: GenerationOptions)] = []
    for (i, mode) in [CacheMode.none, .prefix, .dual, .dual, .none, .prefix].enumerated() {
        var o = GenerationOptions()
        o.genLength = 64
        o.blockLength = 16
        o.cache = mode
        o.policy = i % 2 == 0 ? ThresholdPolicy() : FactorPolicy()
        o.eotp = i >= 3
        jobs.append((prompts[i % prompts.count], o))
    }
    let alone = Decoder(pipeline: try InProcessPipeline(checkpoint: checkpoint, layerRanges: [0..<2, 2..<4]))
    var expected: [GenerationResult] = []
    for (i, job) in jobs.enumerated() {
        expected.append(try await alone.generate(prompt: job.prompt, options: job.options, sequenceID: UInt64(i + 1)))
    }
    let batching = BatchingPipeline(try InProcessPipeline(checkpoint: checkpoint, layerRanges: [0..<2, 2..<4]), maxInFlight: 1)
    let together = Decoder(pipeline: batching)
    let results = try await withThrowingTaskGroup(of: (Int, GenerationResult).self) { group in
        for (i, job) in jobs.enumerated() {
            group.addTask { (i, try await together.generate(prompt: job.prompt, options: job.options, sequenceID: UInt64(i + 1))) }
        }
        var out = [GenerationResult?](repeating: nil, count: jobs.count)
        for try await (i, result) in group { out[i] = result }
        return out
    }
    for i in jobs.indices {
        #expect(results[i]?.canvas == expected[i].canvas, "request \(i)")
        #expect(results[i]?.statistics.nfe == expected[i].statistics.nfe, "request \(i)")
        #expect(results[i]?.statistics.positions == expected[i].statistics.positions, "request \(i)")
    }
    #expect(await batching.batchedSequences > batching.batches, "some forwards should have shared a batch")
}

/// With the embedded filter, a request that names nothing decodes with the measured default
/// configuration; the filter's block length matches the default block length.
@Test func theDefaultConfigurationRunsWithTheEmbeddedFilter() throws {
    let url = try #require(DefaultModel.filter)
    let filter = try FilterNetwork(contentsOf: url)
    let options = try DecodingParameters().options(maxSequenceLength: 2048, filter: filter)
    let spec = try PolicySpec(parsing: DecodingParameters.defaultPolicy)
    #expect(options.policy.name == spec.name)
    #expect(options.eotp == spec.eotp)
    #expect(options.cache == DecodingParameters.defaultCache)
    #expect(options.label == "\(spec.label) cache=\(DecodingParameters.defaultCache.rawValue) gen=\(DecodingParameters.defaultGenLength)")
}
