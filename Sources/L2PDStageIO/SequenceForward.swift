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
