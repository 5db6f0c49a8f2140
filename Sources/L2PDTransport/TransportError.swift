import CNNG

/// A transport failure, with the address it concerns.
public struct TransportError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// No peer connected within the send timeout.
        case unreachable
        /// The peer disconnected while a reply was awaited.
        case peerLost
        /// No reply within the deadline.
        case timeout
        /// The transport was closed on this side.
        case closed
        /// An nng call failed.
        case nng
        /// TLS material or a TLS handshake is wrong (the detail says which).
        case tls
    }
    public let kind: Kind
    public let url: String
    public let detail: String

    public init(kind: Kind, url: String, detail: String) {
        self.kind = kind
        self.url = url
        self.detail = detail
    }

    public var description: String { url.isEmpty ? detail : "\(url): \(detail)" }

    /// A TLS problem, in one line.
    static func tls(_ detail: String, url: String = "") -> TransportError { TransportError(kind: .tls, url: url, detail: detail) }

    /// The error of a failed nng call (`rv` non-zero).
    static func nng(_ rv: Int32, url: String, _ what: String) -> TransportError {
        if rv == Int32(NNG_ECLOSED.rawValue) { return TransportError(kind: .closed, url: url, detail: "closed") }
        return TransportError(kind: .nng, url: url, detail: "\(what) failed: \(String(cString: nng_strerror(rv)))")
    }
}

/// Throws the `TransportError` of a failed nng call.
func check(_ rv: Int32, url: String, _ what: String) throws {
    guard rv != 0 else { return }
    throw TransportError.nng(rv, url: url, what)
}
