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
