import Foundation

/// How a cluster rides out lost and frozen workers.
public struct FaultTolerance: Sendable, Equatable {
    /// Seconds a forward pass whose worker was lost waits for it (or a replica) to serve again
    /// before its request fails; 0 fails at once.
    public var retryWindow: Double
    /// Seconds between heartbeats to each worker; 0 sends none.
    public var heartbeatInterval: Double
    /// Heartbeat intervals without an answer after which a worker is marked down.
    public var heartbeatMisses: Int

    public init(retryWindow: Double = 10, heartbeatInterval: Double = 0.5, heartbeatMisses: Int = 3) {
        self.retryWindow = max(0, min(retryWindow, 86_400))
        self.heartbeatInterval = max(0, min(heartbeatInterval, 3600))
        self.heartbeatMisses = max(1, min(heartbeatMisses, 1000))
    }

    /// Seconds of silence after which a worker is down.
    var silenceLimit: Double { heartbeatInterval * Double(heartbeatMisses) }
}

/// What the cluster survived so far (`/metrics`, `l2pd loadtest`).
public struct FaultCounters: Sendable, Equatable, Codable {
    /// Workers that disconnected or missed their heartbeats while serving.
    public var lostWorkers = 0
    /// Forward passes run again after a worker was lost.
    public var retriedPasses = 0
    /// Sequences moved to another replica after theirs was lost.
    public var movedSequences = 0
    /// Cache refreshes replayed to rebuild the K/V caches a lost worker held.
    public var replayedRefreshes = 0
    public init() {}
}

/// One worker's state as `/health` shows it.
public struct WorkerStatus: Sendable, Equatable {
    public enum State: String, Sendable, CaseIterable {
        /// Connected, answering heartbeats.
        case up
        /// Connected but silent for longer than the heartbeat limit (frozen or overloaded).
        case down
        /// No connection.
        case disconnected
    }
    public var url: String
    public var layers: Range<Int>
    public var state: State
    /// Bytes of weights and of kept K/V caches the worker reported in its last heartbeat
    /// answer (nil: none yet).
    public var weightBytes: UInt64? = nil
    public var cacheBytes: UInt64? = nil
}
