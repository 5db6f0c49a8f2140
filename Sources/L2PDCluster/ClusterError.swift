import L2PDDecoding

/// A request the cluster could not serve, naming the worker: `unavailable` when a worker is
/// down, unreachable or silent; `internalError` when a worker broke the protocol.
public struct ClusterError: ClassifiedError, Sendable {
    public let description: String
    public let errorClass: ErrorClass
    /// The worker went away (disconnected, unreachable, missed its heartbeats): the pass can run
    /// again once it or a replica serves.
    public let workerLost: Bool
    public init(_ description: String, class errorClass: ErrorClass = .unavailable, workerLost: Bool = false) {
        self.description = description
        self.errorClass = errorClass
        self.workerLost = workerLost
    }
}
