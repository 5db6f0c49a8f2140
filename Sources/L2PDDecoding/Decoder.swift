import Foundation
import L2PDModel
import L2PDStageIO

/// Fast-dLLM's cache modes (section 3 of the algorithm notes).
public enum CacheMode: String, Sendable, CaseIterable, Codable {
    /// Every step recomputes the whole canvas.
    case none
    /// Each block starts with a full pass; later steps recompute from the block start to the end.
    case prefix
    /// Each block starts with a full pass; later steps recompute only the block.
    case dual
}

/// Everything that shapes one generation.
public struct GenerationOptions: Sendable {
    public var genLength: Int = 256
    public var blockLength: Int = 32
    /// Total step budget; nil means `genLength` (one token per step for the baseline).
    public var steps: Int? = nil
    public var policy: any UnmaskPolicy = LowConfidencePolicy()
    public var cache: CacheMode = .none
    /// End-of-text prediction: drop everything after a predicted end-of-text.
    public var eotp: Bool = false
    /// Only truncate when the end-of-text confidence is at least this (nil: always).
    public var eotpGate: Float? = nil
    public var temperature: Float = 0
    public var seed: UInt64 = 0
    /// The reference answer (answer tokens) for oracle policies such as EGP.
    public var reference: [Int]? = nil

    /// `learn2pd+eotp cache=dual gen=256`, for reports.
    public var label: String {
        "\(PolicySpec(name: policy.name, eotp: eotp).label) cache=\(cache.rawValue) gen=\(genLength)"
    }

    public init() {}

    public var effectiveSteps: Int { steps ?? genLength }
}

/// A request the decoder refuses, with the facts.
public enum GenerationError: Error, Equatable, CustomStringConvertible {
    case emptyPrompt
    case genLengthNotMultipleOfBlock(genLength: Int, blockLength: Int)
    case invalidLength(name: String, value: Int)
    case stepsNotMultipleOfBlocks(steps: Int, blocks: Int)
    case contextTooLong(prompt: Int, genLength: Int, maximum: Int)
    case tokenOutOfRange(token: Int, vocabulary: Int)
    case unknownPolicy(String)
    case missingReference(policy: String)
    case missingFilter
    case filterBlockLength(filter: Int, blockLength: Int)
    case invalidParameter(name: String, value: String, expected: String)
    case malformedReadout(String)

    public var description: String {
        switch self {
        case .emptyPrompt: return "the prompt is empty"
        case .genLengthNotMultipleOfBlock(let g, let b):
            return "gen length \(g) is not a multiple of block length \(b)"
        case .invalidLength(let name, let value): return "\(name) must be positive, got \(value)"
        case .stepsNotMultipleOfBlocks(let steps, let blocks):
            return "steps \(steps) must be a positive multiple of the number of blocks (\(blocks))"
        case .contextTooLong(let prompt, let gen, let maximum):
            return "prompt (\(prompt) tokens) plus gen length (\(gen)) exceeds the model's max_sequence_length \(maximum)"
        case .tokenOutOfRange(let token, let vocabulary):
            return "prompt token \(token) is outside the vocabulary (\(vocabulary))"
        case .unknownPolicy(let name):
            return "unknown policy '\(name)' (known: \(PolicyFactory.names.joined(separator: ", ")))"
        case .missingReference(let policy): return "policy \(policy) needs a reference answer"
        case .missingFilter: return "policy learn2pd needs a filter (--filter FILE; no default filter is available)"
        case .filterBlockLength(let filter, let block):
            return "the filter was trained for block length \(filter), but block length is \(block)"
        case .invalidParameter(let name, let value, let expected):
            return "\(name) must be \(expected), got \(value)"
        case .malformedReadout(let problem): return "the pipeline returned a malformed readout: \(problem)"
        }
    }
}

extension GenerationError: ClassifiedError {
    public var errorClass: ErrorClass {
        if case .malformedReadout = self { return .internalError }
        return .invalidRequest
    }
}

/// Per-request statistics (section 6 of the algorithm notes).
public struct GenerationStatistics: Sendable, Codable, Equatable {
    /// Forward passes.
    public var nfe = 0
    /// Positions run through the model, summed over passes.
    public var positions = 0
    /// Answer tokens up to (not including) the first end-of-text.
    public var usefulTokens = 0
    public var seconds = 0.0

    public init() {}

    /// Useful tokens per forward pass.
    public var tpf: Double { nfe > 0 ? Double(usefulTokens) / Double(nfe) : 0 }
    /// Useful tokens per second.
    public var tps: Double { seconds > 0 ? Double(usefulTokens) / seconds : 0 }
}

public struct GenerationResult: Sendable {
    /// Answer tokens up to (not including) the first end-of-text.
    public var tokens: [Int]
    /// The whole answer region as committed (end-of-text padding included, truncated part
    /// filled with end-of-text).
    public var canvas: [Int]
    public var statistics: GenerationStatistics
}

/// One step as it happened, for live views: the answer region after the commit.
public struct StepEvent: Sendable {
    public var step: Int
    public var block: Int
    /// Answer-region tokens (mask id where still masked), up to the current canvas end.
    public var answer: [Int]
    /// Answer-relative positions committed this step.
    public var committed: [Int]
    /// Answer-relative canvas end (shrinks under EoTP).
    public var answerLength: Int

    public init(step: Int, block: Int, answer: [Int], committed: [Int], answerLength: Int) {
        self.step = step
        self.block = block
        self.answer = answer
        self.committed = committed
        self.answerLength = answerLength
    }
}

/// LLaDA's semi-autoregressive sampler driving a `Pipeline`: owns the canvas, asks for
/// readouts, lets the policy choose commits, applies EoTP. It never touches weights.
public struct Decoder: Sendable {
    public let pipeline: any Pipeline

    public init(pipeline: any Pipeline) { self.pipeline = pipeline }

    public func validate(promptLength: Int, options: GenerationOptions) throws {
        let c = pipeline.config
        guard promptLength > 0 else { throw GenerationError.emptyPrompt }
        guard options.genLength > 0 else { throw GenerationError.invalidLength(name: "gen length", value: options.genLength) }
        guard options.blockLength > 0 else { throw GenerationError.invalidLength(name: "block length", value: options.blockLength) }
        guard options.genLength % options.blockLength == 0 else {
            throw GenerationError.genLengthNotMultipleOfBlock(genLength: options.genLength, blockLength: options.blockLength)
        }
        let blocks = options.genLength / options.blockLength
        guard options.effectiveSteps > 0, options.effectiveSteps % blocks == 0 else {
            throw GenerationError.stepsNotMultipleOfBlocks(steps: options.effectiveSteps, blocks: blocks)
        }
        guard options.effectiveSteps <= options.genLength else {
            throw GenerationError.invalidParameter(
                name: "steps", value: "\(options.effectiveSteps)", expected: "between 1 and gen length \(options.genLength)")
        }
        // Written so that no sum can overflow, whatever the lengths.
        guard options.genLength <= c.maxSequenceLength, promptLength <= c.maxSequenceLength - options.genLength else {
            throw GenerationError.contextTooLong(prompt: promptLength, genLength: options.genLength, maximum: c.maxSequenceLength)
        }
    }

    /// Generates an answer for `prompt`. `sequenceID` names the request's caches on every
    /// stage (unique among concurrent requests); they are freed before this returns.
    public func generate(
        prompt: [Int], options: GenerationOptions, sequenceID: UInt64 = 1,
        onStep: (@Sendable (StepEvent) -> Void)? = nil
    ) async throws -> GenerationResult {
        try validate(promptLength: prompt.count, options: options)
        if let policy = options.policy as? Learn2PDPolicy, policy.filter.blockLength != options.blockLength {
            throw GenerationError.filterBlockLength(filter: policy.filter.blockLength, blockLength: options.blockLength)
        }
        if options.policy.needsReference && options.reference == nil {
            throw GenerationError.missingReference(policy: options.policy.name)
        }
        for t in prompt where t < 0 || t >= pipeline.config.embeddingSize {
            throw GenerationError.tokenOutOfRange(token: t, vocabulary: pipeline.config.embeddingSize)
        }
        // Caches are freed however the decode ends; a cancelled request (client gone, deadline
        // passed) frees them too, so the release runs outside the caller's cancellation.
        let pipeline = self.pipeline
        do {
            let result = try await run(prompt: prompt, options: options, sequenceID: sequenceID, onStep: onStep)
            if options.cache != .none { await Task { await pipeline.release(sequenceID) }.value }
            return result
        } catch {
            if options.cache != .none { await Task { await pipeline.release(sequenceID) }.value }
            throw error
        }
    }

    private func run(
        prompt: [Int], options: GenerationOptions, sequenceID: UInt64, onStep: (@Sendable (StepEvent) -> Void)?
    ) async throws -> GenerationResult {
        let mask = pipeline.config.maskTokenID
        let eos = pipeline.config.eosTokenID
        let start = ContinuousClock.now
        let p = prompt.count
        var canvas = prompt + Array(repeating: mask, count: options.genLength)
        var length = canvas.count
        var statistics = GenerationStatistics()
        let blocks = options.genLength / options.blockLength
        let stepsPerBlock = options.effectiveSteps / blocks
        var step = 0

        for b in 0..<blocks {
            let blockStart = p + b * options.blockLength
            if blockStart >= length { break }  // EoTP removed this block
            var block: Range<Int> { blockStart..<min(blockStart + options.blockLength, length) }
            let schedule = Decoder.schedule(masked: block.filter { canvas[$0] == mask }.count, steps: stepsPerBlock)
            var stepInBlock = 0
            var history: (tokens: [Int], confidences: [Float], persistence: [Int])? = nil
            while block.contains(where: { canvas[$0] == mask }) {
                try Task.checkCancellation()  // a cancelled request stops here and frees its caches
                // Which positions this pass computes, and under which cache directive.
                let directive: CacheDirective
                let computed: Range<Int>
                switch options.cache {
                case .none: (directive, computed) = (.none, 0..<length)
                case .prefix: (directive, computed) = stepInBlock == 0 ? (.refresh, 0..<length) : (.reuse, blockStart..<length)
                case .dual: (directive, computed) = stepInBlock == 0 ? (.refresh, 0..<length) : (.reuse, block)
                }
                // Read the whole block (the filter sees committed positions too); EoTP also
                // reads masked positions after the block that this pass computes.
                var reads = Array(block)
                if options.eotp && options.cache == .none {
                    reads += (block.upperBound..<length).filter { canvas[$0] == mask }
                }
                let request = SequenceForward(
                    sequenceID: sequenceID, length: length, computed: computed, cache: directive, readPositions: reads,
                    sampling: Sampling(temperature: options.temperature, seed: options.seed, step: step),
                    topK: options.policy.needsMargins ? 2 : 0)
                let readouts = try await pipeline.forward([request], tokens: Array(canvas[computed]))
                guard readouts.count == 1 else { throw GenerationError.malformedReadout("\(readouts.count) readouts for 1 sequence") }
                let readout = readouts[0]
                if let problem = readout.problem(answering: request, vocabulary: pipeline.config.embeddingSize) {
                    throw GenerationError.malformedReadout(problem)
                }
                statistics.nfe += 1
                statistics.positions += computed.count

                let n = block.count
                let tokens = Array(readout.tokens[0..<n])
                let persistence = StepContext.persistence(
                    tokens: tokens, previousTokens: history?.tokens, previous: history?.persistence ?? [])
                let context = StepContext(
                    block: block, masked: block.map { canvas[$0] == mask },
                    tokens: tokens, confidences: Array(readout.confidences[0..<n]),
                    margins: options.policy.needsMargins
                        ? (0..<n).map { readout.topProbabilities[2 * $0] - readout.topProbabilities[2 * $0 + 1] } : nil,
                    scheduled: stepInBlock < schedule.count ? schedule[stepInBlock] : 1,
                    stepInBlock: stepInBlock, step: step, blockLength: options.blockLength,
                    reference: options.reference.map { reference in
                        block.map { $0 - p < reference.count ? reference[$0 - p] : eos }
                    },
                    seed: options.seed, previousTokens: history?.tokens, previousConfidences: history?.confidences,
                    persistence: persistence, endOfText: eos)
                history = (context.tokens, context.confidences, persistence)
                let decision = options.policy.decide(context)
                var committed: [Int] = []
                for i in decision.commit where context.masked[i] {
                    canvas[blockStart + i] = context.tokens[i]
                    committed.append(blockStart + i)
                }
                if committed.isEmpty, let first = context.maskedByConfidence.first {
                    // A policy that chose nothing still advances by one (the loop must end).
                    canvas[blockStart + first] = context.tokens[first]
                    committed.append(blockStart + first)
                }

                if options.eotp,
                    let end = endOfText(readout: readout, decision: decision, context: context, canvas: canvas, options: options)
                {
                    canvas[end] = eos
                    length = end + 1
                }
                onStep?(
                    StepEvent(
                        step: step, block: b, answer: Array(canvas[p..<length]), committed: committed.map { $0 - p },
                        answerLength: length - p))
                step += 1
                stepInBlock += 1
                if blockStart >= length { break }
            }
        }
        // Positions removed by EoTP are end-of-text by definition.
        var answer = Array(canvas[p..<length]) + Array(repeating: eos, count: canvas.count - length)
        if let firstMask = answer.firstIndex(of: mask) {
            answer[firstMask...] = ArraySlice(repeating: eos, count: answer.count - firstMask)
        }
        let useful = Array(answer.prefix { $0 != eos })
        statistics.usefulTokens = useful.count
        statistics.seconds = ForwardClock.seconds(ContinuousClock.now - start)
        return GenerationResult(tokens: useful, canvas: answer, statistics: statistics)
    }

    /// EoTP: the first end-of-text the filter accepted this step; otherwise the most confident
    /// still-masked position predicting end-of-text (the whole computed canvas without a cache,
    /// the block with one), subject to the optional confidence gate.
    private func endOfText(
        readout: Readout, decision: UnmaskDecision, context: StepContext, canvas: [Int], options: GenerationOptions
    ) -> Int? {
        let eos = pipeline.config.eosTokenID
        let mask = pipeline.config.maskTokenID
        let gate = options.eotpGate ?? 0
        let accepted = decision.acceptedByFilter.filter { context.tokens[$0] == eos && context.confidences[$0] >= gate }
        if let first = accepted.min() { return context.block.lowerBound + first }
        var best: (position: Int, confidence: Float)? = nil
        for i in readout.positions.indices {
            let position = readout.positions[i]
            guard canvas[position] == mask, readout.tokens[i] == eos, readout.confidences[i] >= gate else { continue }
            if best == nil || readout.confidences[i] > best!.confidence { best = (position, readout.confidences[i]) }
        }
        return best?.position
    }

    /// LLaDA's fixed schedule: `masked` tokens spread over `steps`, the remainder on the
    /// first steps.
    public static func schedule(masked: Int, steps: Int) -> [Int] {
        (0..<steps).map { masked / steps + ($0 < masked % steps ? 1 : 0) }
    }
}

enum ForwardClock {
    static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
    }
}
