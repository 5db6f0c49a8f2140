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
