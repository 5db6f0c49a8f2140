import Foundation
import L2PDDecoding
import L2PDModel
import L2PDTokenizer

/// Text in, text out: the tokenizer and LLaDA-Instruct chat format on one side, the decoder
/// and its pipeline on the other. Used by `l2pd generate`, `l2pd eval` and the coordinator.
public struct TextGenerator: Sendable {
    public let tokenizer: Tokenizer
    public let decoder: Decoder

    public init(tokenizer: Tokenizer, pipeline: any Pipeline) {
        self.tokenizer = tokenizer
        self.decoder = Decoder(pipeline: pipeline)
    }

    /// Prompt token ids: the chat format around `text` unless `raw`.
    public func promptTokens(_ text: String, raw: Bool) throws -> [Int] {
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw GenerationError.emptyPrompt }
        return tokenizer.encode(raw ? text : ChatFormat.llaDAInstruct(user: text))
    }

    public struct Output: Sendable {
        public var text: String
        public var tokens: [Int]
        /// The whole answer region as committed (end-of-text padding included).
        public var canvas: [Int]
        public var statistics: GenerationStatistics
    }

    public func generate(
        _ text: String, raw: Bool = false, options: GenerationOptions, sequenceID: UInt64 = 1,
        onStep: (@Sendable (StepEvent) -> Void)? = nil
    ) async throws -> Output {
        try await generate(
            promptTokens: try promptTokens(text, raw: raw), options: options, sequenceID: sequenceID, onStep: onStep)
    }

    /// Generates from prompt token ids already encoded (chat format applied or not).
    public func generate(
        promptTokens prompt: [Int], options: GenerationOptions, sequenceID: UInt64 = 1,
        onStep: (@Sendable (StepEvent) -> Void)? = nil
    ) async throws -> Output {
        var options = options
        if options.policy.needsReference && options.reference == nil {
            options.reference = try await referenceAnswer(prompt: prompt, options: options, sequenceID: sequenceID)
        }
        let result = try await decoder.generate(prompt: prompt, options: options, sequenceID: sequenceID, onStep: onStep)
        return Output(
            text: tokenizer.decode(result.tokens, skipSpecialTokens: true), tokens: result.tokens, canvas: result.canvas,
            statistics: result.statistics)
    }
}

extension TextGenerator {
    /// The answer an oracle policy (EGP) compares against: the plain baseline's canvas for the
    /// same prompt, gen length, block length and steps (no cache, no EoTP).
    public func referenceAnswer(prompt: [Int], options: GenerationOptions, sequenceID: UInt64) async throws -> [Int] {
        var baseline = options
        baseline.policy = LowConfidencePolicy()
        baseline.cache = .none
        baseline.eotp = false
        baseline.reference = nil
        return try await decoder.generate(prompt: prompt, options: baseline, sequenceID: sequenceID).canvas
    }
}
