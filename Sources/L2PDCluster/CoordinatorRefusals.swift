import L2PDDecoding

/// A request refused because the server is shutting down.
public struct CoordinatorDraining: ClassifiedError, Sendable {
    public var errorClass: ErrorClass { .unavailable }
    public var description: String { "the server is shutting down; try again later or at another server" }
}

/// A request refused because the coordinator is decoding and queueing all it may.
public struct CoordinatorBusy: ClassifiedError, Sendable {
    public nonisolated let limits: AdmissionLimits
    public var errorClass: ErrorClass { .busy }
    public var description: String {
        "busy: \(limits.concurrent) requests decoding and \(limits.queued) waiting; try again later"
    }
}

/// A request that ran past its deadline (504).
public struct RequestTimedOut: ClassifiedError, Sendable {
    public let seconds: Double
    public var description: String { "the request did not finish within its timeout of \(seconds) s" }
    public var errorClass: ErrorClass { .timeout }
}
