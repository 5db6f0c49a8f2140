import L2PDModel

/// What a policy sees at one step: the current block's predictions and confidences (committed
/// positions included, with their current confidence) and the baseline schedule's quota.
public struct StepContext: Sendable {
    /// Absolute canvas positions of the current block (may be shorter than the block length
    /// after end-of-text truncation).
    public var block: Range<Int>
    /// Per block position: still masked?
    public var masked: [Bool]
    /// Per block position: predicted token and its probability.
    public var tokens: [Int]
    public var confidences: [Float]
    /// Per block position: top-1 minus top-2 probability, when the policy asked for it.
    public var margins: [Float]?
    /// Tokens the baseline's fixed schedule commits at this step (LLaDA's quota).
    public var scheduled: Int
    /// Step index within the block, and across the whole request.
    public var stepInBlock: Int
    public var step: Int
    public var blockLength: Int
    /// The reference answer token at each block position, when the policy needs one (EGP).
    public var reference: [Int]?
    /// Seed of the request (for random remasking).
    public var seed: UInt64
    /// Per block position: the prediction and confidence at the block's previous step (nil at
    /// the block's first step), and how many consecutive earlier steps of this block predicted
    /// what it predicts now (0 when the prediction is new). The decoder keeps this history so
    /// policies stay functions of their context.
    public var previousTokens: [Int]? = nil
    public var previousConfidences: [Float]? = nil
    public var persistence: [Int] = []
    /// The end-of-text token (history features flag predictions of it).
    public var endOfText: Int = -1
}

/// A policy's choice: block-relative indices of masked positions to commit this step.
public struct UnmaskDecision: Sendable, Equatable {
    public var commit: [Int]
    /// The subset a learned filter accepted (EoTP prefers an accepted end-of-text).
    public var acceptedByFilter: [Int]

    public init(commit: [Int], acceptedByFilter: [Int] = []) {
        self.commit = commit
        self.acceptedByFilter = acceptedByFilter
    }
}

/// Decides which masked positions of the current block to commit at each step.
/// Committed tokens are never reopened; a policy must commit at least one position when
/// any is masked so decoding always advances.
public protocol UnmaskPolicy: Sendable {
    /// Name used in tables and on the command line.
    var name: String { get }
    /// Whether `StepContext.margins` must be filled (costs a top-2 readout).
    var needsMargins: Bool { get }
    /// Whether the policy needs `GenerationOptions.reference` (an oracle).
    var needsReference: Bool { get }
    func decide(_ context: StepContext) -> UnmaskDecision
}

extension UnmaskPolicy {
    public var needsMargins: Bool { false }
    public var needsReference: Bool { false }
}

extension StepContext {
    /// Masked block indices ordered by confidence, most confident first (ties: leftmost).
    /// Consecutive-steps counts for predictions `tokens`, given the previous step's
    /// predictions and counts (positions past the previous block's end start at 0).
    public static func persistence(tokens: [Int], previousTokens: [Int]?, previous: [Int]) -> [Int] {
        guard let previousTokens else { return [Int](repeating: 0, count: tokens.count) }
        return tokens.indices.map { i in
            i < previousTokens.count && i < previous.count && previousTokens[i] == tokens[i] ? previous[i] + 1 : 0
        }
    }

    public var maskedByConfidence: [Int] {
        masked.indices.filter { masked[$0] }.sorted {
            confidences[$0] != confidences[$1] ? confidences[$0] > confidences[$1] : $0 < $1
        }
    }
}

/// LLaDA's low-confidence remasking: commit the `scheduled` most confident masked positions.
public struct LowConfidencePolicy: UnmaskPolicy {
    public let name = "baseline"
    public init() {}

    public func decide(_ context: StepContext) -> UnmaskDecision {
        UnmaskDecision(commit: Array(context.maskedByConfidence.prefix(max(1, context.scheduled))))
    }
}

/// LLaDA's random remasking: commit `scheduled` masked positions chosen uniformly at random
/// (seeded by request seed, step and position, so runs repeat).
public struct RandomPolicy: UnmaskPolicy {
    public let name = "random"
    public init() {}

    public func decide(_ context: StepContext) -> UnmaskDecision {
        let key = { (i: Int) -> UInt64 in
            GumbelNoise.mix(context.seed ^ GumbelNoise.mix(UInt64(context.step) << 32 | UInt64(context.block.lowerBound + i)))
        }
        let order = context.masked.indices.filter { context.masked[$0] }.sorted { key($0) < key($1) }
        return UnmaskDecision(commit: Array(order.prefix(max(1, context.scheduled))))
    }
}

/// Fast-dLLM's threshold policy: commit every masked position with confidence at least
/// `threshold`, and always the single most confident one.
public struct ThresholdPolicy: UnmaskPolicy {
    public let name = "threshold"
    public let threshold: Float
    public init(threshold: Float = 0.9) { self.threshold = threshold }

    public func decide(_ context: StepContext) -> UnmaskDecision {
        let order = context.maskedByConfidence
        guard let first = order.first else { return UnmaskDecision(commit: []) }
        return UnmaskDecision(commit: [first] + order.dropFirst().filter { context.confidences[$0] >= threshold })
    }
}

/// Fast-dLLM's factor policy: with confidences sorted descending `c_1 >= c_2 >= ...`, commit
/// the largest `n` with `(n + 1) (1 - c_n) < factor`, and at least one.
public struct FactorPolicy: UnmaskPolicy {
    public let name = "factor"
    public let factor: Float
    public init(factor: Float = 1) { self.factor = factor }

    public func decide(_ context: StepContext) -> UnmaskDecision {
        let order = context.maskedByConfidence
        var count = 0
        for (i, index) in order.enumerated() where Float(i + 2) * (1 - context.confidences[index]) < factor {
            count = i + 1
        }
        return UnmaskDecision(commit: Array(order.prefix(max(1, count))))
    }
}

/// Fast-dLLM++'s Fréchet-profile policy: with confidences sorted descending `c_1 >= c_2 >= ...`,
/// `L_n = max(0, c_1 + ... + c_n - (n - 1))` is the Fréchet lower bound on the chance that the
/// first `n` predictions are all right and `U_n = 1 - c_n` the chance that the n-th is wrong;
/// commit the largest prefix `n` with `L_n - U_n > delta`, and at least one.
public struct FrechetPolicy: UnmaskPolicy {
    public let name = "frechet"
    public let delta: Float
    public init(delta: Float = 0.25) { self.delta = delta }

    public func decide(_ context: StepContext) -> UnmaskDecision {
        let order = context.maskedByConfidence
        var count = 0
        var sum: Float = 0
        for (i, index) in order.enumerated() {
            let c = context.confidences[index]
            sum += c
            let lower = max(0, sum - Float(i))
            if lower - (1 - c) > delta { count = i + 1 }
        }
        return UnmaskDecision(commit: Array(order.prefix(max(1, count))))
    }
}
