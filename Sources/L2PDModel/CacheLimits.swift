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
