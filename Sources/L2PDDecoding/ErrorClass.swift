/// What kind of failure a client is told about; every door maps it the same way (HTTP status,
/// OpenAI error type, nng reply `kind`, CLI exit code).
public enum ErrorClass: String, Sendable, CaseIterable {
    /// The request itself is wrong: 400, exit code 1.
    case invalidRequest = "invalid_request_error"
    /// Every decoding slot and queue place is taken: 503 with Retry-After.
    case busy
    /// A worker the request needs is down or unreachable: 503 with Retry-After.
    case unavailable
    /// The request ran past its deadline: 504.
    case timeout
    /// A fault of the service (a malformed worker reply, a bug): 500, exit code 2.
    case internalError = "server_error"

    public var httpStatus: UInt16 {
        switch self {
        case .invalidRequest: 400
        case .busy, .unavailable: 503
        case .timeout: 504
        case .internalError: 500
        }
    }

    public var exitCode: Int32 { self == .invalidRequest ? 1 : 2 }
}

/// An error a client may see, with its class and a one-sentence description.
public protocol ClassifiedError: Error, CustomStringConvertible {
    var errorClass: ErrorClass { get }
}

extension ErrorClass {
    /// The class of any error: its own when it has one, otherwise an internal error.
    public static func of(_ error: any Error) -> ErrorClass {
        (error as? any ClassifiedError)?.errorClass ?? .internalError
    }
}
