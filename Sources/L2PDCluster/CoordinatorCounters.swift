import Foundation

/// What a coordinator has served so far.
public struct CoordinatorCounters: Sendable, Equatable, Codable {
    public var served = 0
    public var failed = 0
    /// Failed requests that ran past their deadline.
    public var timedOut = 0
    public var refusedBusy = 0
    public var running = 0
    public var waiting = 0
    public var forwardPasses = 0
    public var usefulTokens = 0
    /// Forward batches sent to the workers and the sequence steps they carried.
    public var batches = 0
    public var batchedSequences = 0
}
