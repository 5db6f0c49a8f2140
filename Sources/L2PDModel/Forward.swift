/// Bounds on the K/V caches a stage keeps: beyond them the least recently used cache of a
/// sequence not in the current pass is dropped, and that sequence gets a clear error if it
/// asks to reuse it.
public struct CacheLimits: Sendable, Equatable {
    public var maxSequences: Int
    public var maxBytes: Int
    public init(maxSequences: Int = 64, maxBytes: Int = 4 << 30) {
        self.maxSequences = max(1, maxSequences)
        self.maxBytes = max(1, maxBytes)
    }
}

/// What a stage does with its K/V cache for one sequence in one forward pass.
public enum CacheDirective: UInt8, Sendable, Equatable, CaseIterable {
    /// Compute every position `0..<length`; keep nothing (no cache).
    case none = 0
    /// Compute every position `0..<length` and keep each layer's K/V for later `reuse` steps
    /// (the first step of a block under a prefix or dual cache).
    case refresh = 1
    /// Compute only `computed`, attending to the kept K/V for every other position and
    /// overwriting the kept K/V of `computed` (Fast-dLLM prefix cache when `computed` runs to
    /// the end, dual cache when it is one block: the suffix K/V are stale by design).
    case reuse = 2
}

/// Temperature and seed for the readout. Temperature 0 is greedy. The Gumbel noise for a
/// (seed, step, position, token) is a pure function of those four, so a request samples the
/// same tokens wherever its stages run.
public struct Sampling: Sendable, Equatable {
    public var temperature: Float
    public var seed: UInt64
    public var step: Int

    public init(temperature: Float = 0, seed: UInt64 = 0, step: Int = 0) {
        self.temperature = temperature
        self.seed = seed
        self.step = step
    }

    public static let greedy = Sampling()
}

/// One sequence's part of a forward pass through a stage.
public struct SequenceForward: Sendable, Equatable {
    /// Names the sequence's K/V cache on every stage; unique among live requests.
    public var sequenceID: UInt64
    /// Canvas length: attention covers positions `0..<length`.
    public var length: Int
    /// Positions run through the layers this pass (all of `0..<length` unless `reuse`).
    public var computed: Range<Int>
    public var cache: CacheDirective
    /// Positions (inside `computed`) the last stage reads out, in this order.
    public var readPositions: [Int]
    public var sampling: Sampling
    /// Also return `P(end-of-text)` at each read position.
    public var wantsEOSProbability: Bool
    /// Also return the `topK` most likely tokens and their probabilities (0: none).
    public var topK: Int

    public init(
        sequenceID: UInt64, length: Int, computed: Range<Int>? = nil, cache: CacheDirective = .none,
        readPositions: [Int] = [], sampling: Sampling = .greedy, wantsEOSProbability: Bool = false, topK: Int = 0
    ) {
        self.sequenceID = sequenceID
        self.length = length
        self.computed = computed ?? 0..<length
        self.cache = cache
        self.readPositions = readPositions
        self.sampling = sampling
        self.wantsEOSProbability = wantsEOSProbability
        self.topK = topK
    }
}

/// What the last stage returns for one sequence: per read position, the chosen token and its
/// softmax probability. Full logits never leave the stage.
public struct Readout: Sendable, Equatable {
    public var positions: [Int]
    public var tokens: [Int]
    public var confidences: [Float]
    /// `P(end-of-text)` per position; empty unless requested.
    public var eosProbabilities: [Float]
    /// `topK` tokens per position, most likely first; empty unless requested.
    public var topTokens: [Int]
    public var topProbabilities: [Float]

    public init(
        positions: [Int], tokens: [Int], confidences: [Float], eosProbabilities: [Float] = [],
        topTokens: [Int] = [], topProbabilities: [Float] = []
    ) {
        self.positions = positions
        self.tokens = tokens
        self.confidences = confidences
        self.eosProbabilities = eosProbabilities
        self.topTokens = topTokens
        self.topProbabilities = topProbabilities
    }
}

/// The input of a stage: token ids on the first stage, hidden states on the others. Rows are
/// the `computed` positions of each sequence of the batch, concatenated in batch order.
public enum StageInput: Sendable {
    case tokens([Int])
    /// `rows * dModel` floats, row-major.
    case hidden([Float])
}

/// The output of a stage: hidden states for the next stage, or readouts from the last.
public enum StageOutput: Sendable {
    case hidden([Float])
    case readouts([Readout])
}

/// A forward request a stage cannot serve. Each case names what was wrong.
public enum StageError: Error, Equatable, CustomStringConvertible {
    case inputKind(expected: String)
    case rowCount(expected: Int, found: Int)
    case tokenOutOfRange(token: Int, embeddingSize: Int)
    case sequenceTooLong(length: Int, maximum: Int)
    case invalidRange(sequenceID: UInt64, computed: Range<Int>, length: Int)
    case readPositionOutside(sequenceID: UInt64, position: Int, computed: Range<Int>)
    case missingCache(sequenceID: UInt64)
    case cacheTooShort(sequenceID: UInt64, cached: Int, length: Int)
    case duplicateSequence(sequenceID: UInt64)
    case cacheEvicted(sequenceID: UInt64, maxSequences: Int, maxBytes: Int)

    public var description: String {
        switch self {
        case .inputKind(let expected):
            return "stage expects \(expected) as input"
        case .rowCount(let expected, let found):
            return "stage input has \(found) rows, the batch computes \(expected)"
        case .tokenOutOfRange(let token, let size):
            return "token id \(token) is outside the embedding (\(size) rows)"
        case .sequenceTooLong(let length, let maximum):
            return "sequence of \(length) positions exceeds max_sequence_length \(maximum)"
        case .invalidRange(let id, let computed, let length):
            return "sequence \(id): computed range \(computed) is not valid for length \(length) under its cache directive"
        case .readPositionOutside(let id, let position, let computed):
            return "sequence \(id): read position \(position) is outside the computed range \(computed)"
        case .missingCache(let id):
            return "sequence \(id): no K/V cache to reuse (refresh it first)"
        case .cacheTooShort(let id, let cached, let length):
            return "sequence \(id): K/V cache holds \(cached) positions, the step needs \(length)"
        case .duplicateSequence(let id):
            return "sequence \(id) appears twice in one batch"
        case .cacheEvicted(let id, let sequences, let bytes):
            return
                "sequence \(id): its K/V cache was dropped to stay within \(sequences) cached sequences and \(bytes >> 20) MiB (least recently used first)"
        }
    }
}

extension Readout {
    /// What is wrong with this readout as the answer to `request` (nil: nothing): one entry per
    /// requested position in order, tokens inside the vocabulary, probabilities finite in
    /// [0, 1], top-k lists of the requested size. A pipeline's reply is checked with this
    /// before any of it is used.
    public func problem(answering request: SequenceForward, vocabulary: Int) -> String? {
        let n = request.readPositions.count
        guard positions == request.readPositions else {
            return "positions \(positions.prefix(8)) (\(positions.count)) differ from the \(n) requested"
        }
        guard tokens.count == n, confidences.count == n else {
            return "\(tokens.count) tokens and \(confidences.count) confidences for \(n) positions"
        }
        if let bad = tokens.first(where: { $0 < 0 || $0 >= vocabulary }) {
            return "token \(bad) is outside the vocabulary (\(vocabulary))"
        }
        if let bad = confidences.first(where: { !($0 >= 0 && $0 <= 1) }) { return "confidence \(bad) is not a probability" }
        guard eosProbabilities.isEmpty || eosProbabilities.count == n else {
            return "\(eosProbabilities.count) end-of-text probabilities for \(n) positions"
        }
        if let bad = eosProbabilities.first(where: { !($0 >= 0 && $0 <= 1) }) {
            return "end-of-text probability \(bad) is not a probability"
        }
        let k = request.topK
        guard topTokens.count == n * k, topProbabilities.count == n * k else {
            return "\(topTokens.count) top-k tokens and \(topProbabilities.count) probabilities for \(n) positions x \(k)"
        }
        if let bad = topTokens.first(where: { $0 < 0 || $0 >= vocabulary }) {
            return "top-k token \(bad) is outside the vocabulary (\(vocabulary))"
        }
        if let bad = topProbabilities.first(where: { !($0 >= 0 && $0 <= 1) }) {
            return "top-k probability \(bad) is not a probability"
        }
        return nil
    }
}
