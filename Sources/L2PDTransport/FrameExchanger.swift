import Foundation

/// Request and reply over a `FrameTransport` for many callers at once: a chain of receives
/// (each completion starts the next, on the transport's thread) hands every frame to the caller
/// waiting for its key (`replyKey` reads it from the frame; replies nobody waits for, such as
/// late ones, are dropped). A caller's wait ends with its reply, its deadline, the peer going
/// away, `failAll`, or the caller's cancellation; nothing polls and no thread waits.
public final class FrameExchanger: @unchecked Sendable {
    // @unchecked: `pending`, `reading` and `armedFor` are guarded by `lock`.
    public let transport: any FrameTransport
    private let replyKey: @Sendable ([UInt8]) -> UInt64?
    private let lock = NSLock()
    private var pending: [UInt64: Waiting] = [:]
    private var reading = false

    private struct Waiting {
        /// Runs once per wait (the first outcome; later ones find it gone or fulfilled).
        let deliver: @Sendable (Result<[UInt8], any Error>) -> Void
        /// Also failed by `failAll(_:onlyWatching: true)`.
        let watching: Bool
        let deadline: DispatchTime
        let replyTimeout: Double
    }
    /// One timer for every deadline, armed for the earliest (with one reply timeout, that is
    /// the oldest wait, so it rarely moves).
    private let timer = DispatchSource.makeTimerSource(queue: .global())
    private var armedFor: DispatchTime?

    public init(_ transport: any FrameTransport, replyKey: @escaping @Sendable ([UInt8]) -> UInt64?) {
        self.transport = transport
        self.replyKey = replyKey
        timer.setEventHandler { [weak self] in self?.expire() }
        timer.activate()
        transport.onConnectionChange { [weak self] event in
            guard event == .disconnected, let self else { return }
            self.failAll(
                TransportError(kind: .peerLost, url: transport.url, detail: "peer disconnected while a reply was awaited"),
                onlyWatching: false)
        }
    }

    deinit { timer.cancel() }

    /// Sends `frame` and returns the reply with the same `key`. Throws `unreachable` when no peer
    /// takes the frame within `sendTimeout`, `peerLost` when the peer goes away first, `timeout`
    /// after `replyTimeout` seconds. With `watching`, `failAll(_:onlyWatching:)` also ends it.
    public func exchange(
        _ frame: [UInt8], key: UInt64, sendTimeout: Double, replyTimeout: Double, watching: Bool = false
    ) async throws -> [UInt8] {
        let promise = Promise<[UInt8]>()
        expect(key: key, replyTimeout: replyTimeout, watching: watching) { promise.fulfil($0) }
        defer { forget(key: key) }
        transport.send(frame, timeout: sendTimeout) { error in
            if let error { promise.fulfil(.failure(error)) }
        }
        return try await promise.value()
    }

    /// Waits for the frame with `key` without sending anything (for a reply that another link's
    /// request brings about): `deliver` gets it, or the error that ends the wait as `exchange`
    /// describes. The wait lasts until `forget(key:)`.
    public func expect(
        key: UInt64, replyTimeout: Double, watching: Bool = false, deliver: @escaping @Sendable (Result<[UInt8], any Error>) -> Void
    ) {
        let deadline = DispatchTime.now() + max(0, min(replyTimeout, 86_400))
        let startReading = lock.withLock { () -> Bool in
            pending[key] = Waiting(deliver: deliver, watching: watching, deadline: deadline, replyTimeout: replyTimeout)
            if armedFor.map({ deadline < $0 }) ?? true {
                armedFor = deadline
                timer.schedule(deadline: deadline)
            }
            defer { reading = true }
            return !reading
        }
        if startReading { readNext() }
    }

    /// Ends the wait for `key` (nothing is delivered to it any more).
    public func forget(key: UInt64) { _ = lock.withLock { pending.removeValue(forKey: key) } }

    /// Ends every wait (those that asked to be `watching`, or all) with `error`.
    public func failAll(_ error: any Error, onlyWatching: Bool) {
        let waiting = lock.withLock { pending.values.filter { !onlyWatching || $0.watching } }
        for w in waiting { w.deliver(.failure(error)) }
    }

    /// Replies awaited now.
    public var pendingCount: Int { lock.withLock { pending.count } }

    /// Fails the waits whose deadline passed and arms the timer for the next one.
    private func expire() {
        let now = DispatchTime.now()
        let expired = lock.withLock { () -> [Waiting] in
            let expired = pending.values.filter { $0.deadline <= now }
            let next = pending.values.filter { $0.deadline > now }.map(\.deadline).min()
            armedFor = next
            if let next { timer.schedule(deadline: next) }
            return expired
        }
        for w in expired {
            w.deliver(
                .failure(TransportError(kind: .timeout, url: transport.url, detail: "no reply within \(w.replyTimeout) s")))
        }
    }

    /// Closes the transport (which ends the receives).
    public func close() { transport.close() }

    /// Receives the next frame and routes it; each completion starts the next receive.
    private func readNext() {
        transport.receive { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let frame):
                if let key = self.replyKey(frame) {
                    let waiting = self.lock.withLock { self.pending[key] }
                    waiting?.deliver(.success(frame))
                }
                self.readNext()
            case .failure(let error as TransportError) where error.kind != .closed:
                // A failed receive (out of memory, say) is not the end of the link: try again shortly.
                DispatchQueue.global().asyncAfter(deadline: .now() + 0.01) { self.readNext() }
            case .failure:
                self.lock.withLock { self.reading = false }  // closed
            }
        }
    }
}
