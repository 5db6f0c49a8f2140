import L2PDDecoding

/// A request the cluster could not serve, naming the worker: `unavailable` when a worker is
/// down, unreachable or silent; `internalError` when a worker broke the protocol.
public struct ClusterError: ClassifiedError, Sendable {
    public let description: String
    public let errorClass: ErrorClass
    public init(_ description: String, class errorClass: ErrorClass = .unavailable) {
        self.description = description
        self.errorClass = errorClass
    }
}
