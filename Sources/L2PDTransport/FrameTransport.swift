/// A peer connecting or going away.
public enum ConnectionEvent: Sendable, Equatable {
    case connected
    case disconnected
}

/// Carries whole frames to one peer and back: an nng pair socket (`PairSocket`), or two ends of
/// an in-memory link (`InMemoryFrameTransport`) for tests without sockets. Operations complete
/// through callbacks (on the transport's own threads: they must not block) and never hold a
/// thread while they wait; `send(_:timeout:)` and `receive()` are the same for a waiting task.
public protocol FrameTransport: AnyObject, Sendable {
    /// The address, for messages.
    var url: String { get }
    /// Starts sending one frame; `completion` runs once with nil when a peer took it, or the
    /// error (`unreachable` when none did within `timeout` seconds).
    func send(_ frame: [UInt8], timeout: Double, completion: @escaping @Sendable ((any Error)?) -> Void)
    /// Starts receiving the next frame; `completion` runs once with it or the error (`closed`
    /// once this side is closed, `CancellationError` after `cancel` on the returned handle).
    @discardableResult
    func receive(completion: @escaping @Sendable (Result<[UInt8], any Error>) -> Void) -> CancelHandle
    /// Connections made so far; grows by one each time a peer (re)connects.
    var connectionCount: Int { get }
    /// Disconnections so far; grows by one each time a peer goes away.
    var disconnectionCount: Int { get }
    /// Whether a peer is connected now.
    var isConnected: Bool { get }
    /// Calls `handler` (on any thread; it must not block) each time a peer connects or goes away.
    func onConnectionChange(_ handler: @escaping @Sendable (ConnectionEvent) -> Void)
    /// Ends every wait with `closed`; idempotent.
    func close()

    /// Starts receiving the next frame with the connection it came on (a transport that
    /// accepts several peers tells them apart by it).
    @discardableResult
    func receiveFromPeer(completion: @escaping @Sendable (Result<PeerFrame, any Error>) -> Void) -> CancelHandle
    /// Starts sending one frame on `connection` (a value `receiveFromPeer` gave).
    func send(_ frame: [UInt8], on connection: Int, timeout: Double, completion: @escaping @Sendable ((any Error)?) -> Void)
    /// Whether `connection` is still open.
    func isOpen(_ connection: Int) -> Bool
}

/// A received frame and the connection it came on.
public struct PeerFrame: Sendable {
    public let connection: Int
    public let bytes: [UInt8]

    public init(connection: Int, bytes: [UInt8]) {
        self.connection = connection
        self.bytes = bytes
    }
}

/// One peer at a time: its connection is the count of connections made so far.
extension FrameTransport {
    @discardableResult
    public func receiveFromPeer(completion: @escaping @Sendable (Result<PeerFrame, any Error>) -> Void) -> CancelHandle {
        receive { [self] result in completion(result.map { PeerFrame(connection: connectionCount, bytes: $0) }) }
    }

    public func send(_ frame: [UInt8], on connection: Int, timeout: Double, completion: @escaping @Sendable ((any Error)?) -> Void) {
        send(frame, timeout: timeout, completion: completion)
    }

    public func isOpen(_ connection: Int) -> Bool { isConnected && connectionCount == connection }
}

extension FrameTransport {
    /// Sends one frame, suspending until a peer took it.
    public func send(_ frame: [UInt8], timeout: Double) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            send(frame, timeout: timeout) { error in
                if let error { continuation.resume(throwing: error) } else { continuation.resume() }
            }
        }
    }

    /// The next frame; cancelling the calling task ends the wait with `CancellationError`.
    public func receive() async throws -> [UInt8] {
        let handle = CancelHandle()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                handle.set(receive { continuation.resume(with: $0) }.cancel)
            }
        } onCancel: {
            handle.cancel()
        }
    }
}
