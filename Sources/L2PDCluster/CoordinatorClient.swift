import Foundation
import L2PDDecoding
import L2PDEngine
import L2PDTransport

/// A client of a coordinator's nng request/reply door (`l2pd generate --coordinator`, the load
/// test): one socket, any number of requests at once.
public final class CoordinatorClient: Sendable {
    public let url: String
    private let socket: RequestSocket

    public init(url: String) throws {
        self.url = url
        socket = try RequestSocket(dialing: url)
    }

    /// One request: its reply, or the coordinator's error as a `CoordinatorRefusal`.
    public func generate(_ request: GenerationRequest, timeout: Double = 600) async throws -> GenerationReply {
        let bytes = try await socket.request(Array(try JSONEncoder().encode(request)), timeout: timeout)
        if let reply = try? JSONDecoder().decode(GenerationReply.self, from: Data(bytes)) { return reply }
        if let error = try? JSONDecoder().decode([String: String].self, from: Data(bytes)), let text = error["error"] {
            throw CoordinatorRefusal(kind: error["kind"] ?? ErrorClass.internalError.rawValue, message: "coordinator: \(text)")
        }
        throw ClusterError("coordinator at \(url) sent an unreadable reply")
    }
}

/// An error reply of the coordinator: `kind` is an `ErrorClass` raw value.
public struct CoordinatorRefusal: ClassifiedError, Sendable {
    public let kind: String
    public let message: String
    public init(kind: String, message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }
    public var errorClass: ErrorClass { ErrorClass(rawValue: kind) ?? .internalError }
}
