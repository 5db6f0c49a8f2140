import CNNG
import Dispatch
import Foundation

/// A transport failure, with the address it concerns.
public struct TransportError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// No peer connected within the send timeout.
        case unreachable
        /// The peer disconnected while a reply was awaited.
        case peerLost
        /// No reply within the deadline.
        case timeout
        /// An nng call failed.
        case nng
    }
    public let kind: Kind
    public let url: String
    public let detail: String

    public var description: String { "\(url): \(detail)" }
}

/// Counts pipes (connections) added and removed; updated from nng's own threads.
final class PipeCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var added = 0
    private var removed = 0

    func record(_ event: nng_pipe_ev) {
        lock.withLock {
            if event == NNG_PIPE_EV_ADD_POST { added += 1 }
            if event == NNG_PIPE_EV_REM_POST { removed += 1 }
        }
    }

    var snapshot: (added: Int, removed: Int) { lock.withLock { (added, removed) } }
}

/// An nng pair1 socket: one peer at a time, frames both ways, nothing resent behind the
/// caller's back. The coordinator dials each worker (nng reconnects in the background when a
/// worker restarts); a worker listens. Blocking nng calls run on the socket's own serial
/// dispatch queue or on the caller's thread, never on Swift's cooperative pool.
public final class PairSocket: @unchecked Sendable {
    // @unchecked: `socket` is immutable after init; nng sockets are thread-safe; option
    // changes and blocking calls for `exchange` are serialized on `queue`.
    public let url: String
    private var socket = nng_socket()
    private let counter = PipeCounter()
    private let counterReference: Unmanaged<PipeCounter>
    private let queue: DispatchQueue
    private let closed = ClosedFlag()

    private init(url: String, maxMessageBytes: Int) throws {
        self.url = url
        queue = DispatchQueue(label: "l2pd.pair.\(url)")
        counterReference = Unmanaged.passRetained(counter)
        try check(nng_pair1_open(&socket), "open")
        try check(nng_socket_set_size(socket, "recv-size-max", maxMessageBytes), "set recv-size-max")
        try check(nng_socket_set_ms(socket, "reconnect-time-min", 50), "set reconnect-time-min")
        try check(nng_socket_set_ms(socket, "reconnect-time-max", 500), "set reconnect-time-max")
        let callback: nng_pipe_cb = { _, event, context in
            guard let context else { return }
            Unmanaged<PipeCounter>.fromOpaque(context).takeUnretainedValue().record(event)
        }
        let context = counterReference.toOpaque()
        try check(nng_pipe_notify(socket, NNG_PIPE_EV_ADD_POST, callback, context), "pipe notify")
        try check(nng_pipe_notify(socket, NNG_PIPE_EV_REM_POST, callback, context), "pipe notify")
    }

    /// Dials `url` (tcp://, ipc://, inproc://) in the background: the peer may start later.
    public static func dial(_ url: String, maxMessageBytes: Int) throws -> PairSocket {
        let s = try PairSocket(url: url, maxMessageBytes: maxMessageBytes)
        try s.check(nng_dial(s.socket, url, nil, Int32(NNG_FLAG_NONBLOCK)), "dial")
        return s
    }

    /// Listens on `url`; fails at once if the address is taken or malformed.
    public static func listen(_ url: String, maxMessageBytes: Int) throws -> PairSocket {
        let s = try PairSocket(url: url, maxMessageBytes: maxMessageBytes)
        try s.check(nng_listen(s.socket, url, nil, 0), "listen")
        return s
    }

    deinit {
        close()
        counterReference.release()
    }

    public func close() {
        if closed.set() { nng_close(socket) }
    }

    /// Whether a peer is connected now.
    public var isConnected: Bool {
        let s = counter.snapshot
        return s.added > s.removed
    }

    /// Connections made so far; grows by one each time a peer (re)connects.
    public var connectionCount: Int { counter.snapshot.added }

    /// Disconnections so far; grows by one each time a peer goes away.
    public var disconnectionCount: Int { counter.snapshot.removed }

    /// Blocking send; waits at most `timeout` seconds for a peer.
    public func send(_ bytes: [UInt8], timeout: Double) throws {
        try check(nng_socket_set_ms(socket, "send-timeout", milliseconds(timeout)), "set send-timeout")
        let rv = bytes.withUnsafeBytes { nng_send(socket, UnsafeMutableRawPointer(mutating: $0.baseAddress), $0.count, 0) }
        if rv == Int32(NNG_ETIMEDOUT.rawValue) {
            throw TransportError(kind: .unreachable, url: url, detail: "no peer connected within \(timeout) s")
        }
        try check(rv, "send")
    }

    /// Blocking receive of one frame; nil when nothing arrived within `timeout` seconds.
    public func receive(timeout: Double) throws -> [UInt8]? {
        try check(nng_socket_set_ms(socket, "recv-timeout", milliseconds(timeout)), "set recv-timeout")
        var buffer: UnsafeMutableRawPointer? = nil
        var size = 0
        let rv = withUnsafeMutablePointer(to: &buffer) { pointer in
            nng_recv(socket, UnsafeMutableRawPointer(pointer), &size, Int32(NNG_FLAG_ALLOC))
        }
        if rv == Int32(NNG_ETIMEDOUT.rawValue) { return nil }
        try check(rv, "receive")
        defer { nng_free(buffer, size) }
        return [UInt8](UnsafeRawBufferPointer(start: buffer, count: size))
    }

    /// Sends `bytes`, then waits for a reply that `accept` takes (stale replies are skipped).
    /// Fails as soon as the peer disconnects, after `timeout` seconds, or when `abort` (polled
    /// every 50 ms) returns an error.
    public func exchange(
        _ bytes: [UInt8], timeout: Double, sendTimeout: Double = 2, accept: @escaping @Sendable ([UInt8]) -> Bool,
        abort: @escaping @Sendable () -> (any Error)? = { nil }
    ) async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [self] in
                continuation.resume(
                    with: Result { try exchangeBlocking(bytes, timeout: timeout, sendTimeout: sendTimeout, accept: accept, abort: abort) })
            }
        }
    }

    private func exchangeBlocking(
        _ bytes: [UInt8], timeout: Double, sendTimeout: Double, accept: ([UInt8]) -> Bool, abort: () -> (any Error)?
    ) throws -> [UInt8] {
        let lostBefore = counter.snapshot.removed
        // Send without blocking in nng, so a peer lost (or an abort) while no peer takes the
        // frame is noticed at once rather than after the whole send timeout.
        let sendDeadline = DispatchTime.now().uptimeNanoseconds + UInt64(sendTimeout * 1e9)
        while true {
            let rv = bytes.withUnsafeBytes {
                nng_send(socket, UnsafeMutableRawPointer(mutating: $0.baseAddress), $0.count, Int32(NNG_FLAG_NONBLOCK))
            }
            if rv == 0 { break }
            if rv != Int32(NNG_EAGAIN.rawValue) { try check(rv, "send") }
            if counter.snapshot.removed != lostBefore {
                throw TransportError(kind: .peerLost, url: url, detail: "peer disconnected before the frame was sent")
            }
            if let error = abort() { throw error }
            if DispatchTime.now().uptimeNanoseconds > sendDeadline {
                throw TransportError(kind: .unreachable, url: url, detail: "no peer connected within \(sendTimeout) s")
            }
            usleep(1000)
        }
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeout * 1e9)
        while true {
            if counter.snapshot.removed != lostBefore {
                throw TransportError(kind: .peerLost, url: url, detail: "peer disconnected while a reply was awaited")
            }
            if let error = abort() { throw error }
            if DispatchTime.now().uptimeNanoseconds > deadline {
                throw TransportError(kind: .timeout, url: url, detail: "no reply within \(timeout) s")
            }
            if let reply = try receive(timeout: 0.05), accept(reply) { return reply }
        }
    }

    private func milliseconds(_ seconds: Double) -> Int32 { Int32(max(1, min(seconds * 1000, 86_400_000))) }

    private func check(_ rv: Int32, _ what: String) throws {
        guard rv != 0 else { return }
        throw TransportError(kind: .nng, url: url, detail: "\(what) failed: \(String(cString: nng_strerror(rv)))")
    }
}

/// Set once; `set()` returns true for the first caller only.
final class ClosedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() -> Bool {
        lock.withLock {
            defer { value = true }
            return !value
        }
    }
}
