import Foundation

/// Two ends of an in-memory frame link, for testing what runs over a `FrameTransport` (a worker,
/// a pipeline) without sockets, as swift-nio's embedded channel does. Frames arrive in order;
/// `disconnect` and `reconnect` play a peer going away and coming back (frames not yet
/// received are dropped, as a broken connection drops them).
public final class InMemoryFrameTransport: FrameTransport, @unchecked Sendable {
    // @unchecked: all state lives in `Link`, which guards itself.
    public let url: String
    private let link: Link
    private let side: Int

    private init(url: String, link: Link, side: Int) {
        self.url = url
        self.link = link
        self.side = side
    }

    /// Both ends of a new, connected link.
    public static func pair(url: String = "memory://link") -> (InMemoryFrameTransport, InMemoryFrameTransport) {
        let link = Link()
        return (InMemoryFrameTransport(url: url, link: link, side: 0), InMemoryFrameTransport(url: url, link: link, side: 1))
    }

    public func send(_ frame: [UInt8], timeout: Double, completion: @escaping @Sendable ((any Error)?) -> Void) {
        let (url, side) = (self.url, self.side)
        let waiter = SendWaiter(frame: frame, peer: 1 - side, completion: completion)
        let delivered = link.withLock { state -> TransportError?? in
            if state.closed[side] { return .some(TransportError(kind: .closed, url: url, detail: "closed")) }
            guard state.connected else {
                state.waitingSends.append(waiter)
                return .none
            }
            state.deliver(frame, to: waiter.peer)
            return .some(nil)
        }
        if case .some(let error) = delivered {
            Self.later { waiter.finish(error) }
            return
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + max(0, min(timeout, 86_400))) { [link] in
            link.withLock { state in state.waitingSends.removeAll { $0 === waiter } }
            waiter.finish(TransportError(kind: .unreachable, url: url, detail: "no peer took the frame within \(timeout) s"))
        }
    }

    @discardableResult
    public func receive(completion: @escaping @Sendable (Result<[UInt8], any Error>) -> Void) -> CancelHandle {
        let (url, side) = (self.url, self.side)
        let waiter = Receiver(completion)
        let ready = link.withLock { state -> Result<[UInt8], TransportError>? in
            if state.closed[side] { return .failure(TransportError(kind: .closed, url: url, detail: "closed")) }
            if !state.inbox[side].isEmpty { return .success(state.inbox[side].removeFirst()) }
            state.receivers[side].append(waiter)
            return nil
        }
        let handle = CancelHandle()
        if let ready {
            Self.later { waiter.finish(ready.mapError { $0 as any Error }) }
            return handle
        }
        handle.set { [link] in
            // A receive given up must not take the next frame.
            link.withLock { state in state.receivers[side].removeAll { $0 === waiter } }
            waiter.finish(.failure(CancellationError()))
        }
        return handle
    }

    /// Completes on another thread, as a socket would (a caller may start its next operation
    /// from the completion without growing the stack).
    private static func later(_ work: @escaping @Sendable () -> Void) { DispatchQueue.global().async(execute: work) }

    public var connectionCount: Int { link.withLock { $0.connections } }
    public var disconnectionCount: Int { link.withLock { $0.disconnections } }
    public var isConnected: Bool { link.withLock { $0.connected } }

    public func onConnectionChange(_ handler: @escaping @Sendable (ConnectionEvent) -> Void) {
        link.withLock { $0.handlers.append(handler) }
    }

    public func close() {
        let (receivers, sends) = link.withLock { state -> ([Receiver], [SendWaiter]) in
            state.closed[side] = true
            let mine = state.waitingSends.filter { $0.peer != side }
            state.waitingSends.removeAll { $0.peer != side }
            defer { state.receivers[side] = [] }
            return (state.receivers[side], mine)
        }
        let closed = TransportError(kind: .closed, url: url, detail: "closed")
        for r in receivers { r.finish(.failure(closed)) }
        for s in sends { s.finish(closed) }
    }

    /// The peer goes away: both ends see a disconnection and frames in flight are lost.
    public func disconnect() {
        let handlers = link.withLock { state -> [@Sendable (ConnectionEvent) -> Void] in
            guard state.connected else { return [] }
            state.connected = false
            state.disconnections += 1
            state.inbox = [[], []]
            return state.handlers
        }
        for h in handlers { h(.disconnected) }
    }

    /// The peer comes back: waiting senders go on.
    public func reconnect() {
        let (handlers, sent) = link.withLock { state -> ([@Sendable (ConnectionEvent) -> Void], [SendWaiter]) in
            guard !state.connected else { return ([], []) }
            state.connected = true
            state.connections += 1
            for waiting in state.waitingSends { state.deliver(waiting.frame, to: waiting.peer) }
            defer { state.waitingSends = [] }
            return (state.handlers, state.waitingSends)
        }
        for s in sent { s.finish(nil) }
        for h in handlers { h(.connected) }
    }

    /// A send waiting for the peer to come back.
    private final class SendWaiter: Sendable {
        let frame: [UInt8]
        let peer: Int
        private let completion: @Sendable ((any Error)?) -> Void
        private let done = Promise<Void>()
        init(frame: [UInt8], peer: Int, completion: @escaping @Sendable ((any Error)?) -> Void) {
            self.frame = frame
            self.peer = peer
            self.completion = completion
        }
        /// Completes once; later calls are ignored.
        func finish(_ error: (any Error)?) {
            if done.fulfil(.success(())) { completion(error) }
        }
    }

    /// A waiting receive.
    private final class Receiver: Sendable {
        private let completion: @Sendable (Result<[UInt8], any Error>) -> Void
        private let done = Promise<Void>()
        init(_ completion: @escaping @Sendable (Result<[UInt8], any Error>) -> Void) { self.completion = completion }
        /// Completes once; later calls are ignored.
        func finish(_ result: Result<[UInt8], any Error>) {
            if done.fulfil(.success(())) { completion(result) }
        }
    }

    /// The state both ends share.
    private final class Link: @unchecked Sendable {
        struct State {
            var connected = true
            var connections = 1
            var disconnections = 0
            var inbox: [[[UInt8]]] = [[], []]
            var receivers: [[Receiver]] = [[], []]
            var waitingSends: [SendWaiter] = []
            var closed = [false, false]
            var handlers: [@Sendable (ConnectionEvent) -> Void] = []

            /// Hands `frame` to `peer`'s first waiting receive (on another thread), or queues it.
            mutating func deliver(_ frame: [UInt8], to peer: Int) {
                if receivers[peer].isEmpty {
                    inbox[peer].append(frame)
                } else {
                    let receiver = receivers[peer].removeFirst()
                    InMemoryFrameTransport.later { receiver.finish(.success(frame)) }
                }
            }
        }
        private let lock = NSLock()
        private var state = State()
        func withLock<T>(_ body: (inout State) -> T) -> T { lock.withLock { body(&state) } }
    }
}
