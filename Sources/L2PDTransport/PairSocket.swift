import CNNG
import Foundation

/// An nng pair1 socket: frames both ways, nothing resent behind the caller's back. The
/// coordinator dials each worker (nng reconnects in the background when a worker restarts); a
/// worker listens, for several peers at once (its coordinator and the stages before it in a
/// chained pass: pair1's polyamorous mode), and tells them apart by connection (nng's pipe id).
/// Sends complete through nng's callbacks and receives on a reader thread of the socket's own:
/// nothing polls.
public final class PairSocket: FrameTransport, @unchecked Sendable {
    // @unchecked: `socket` is written only in init; nng sockets are thread-safe; the pipe
    // state lives in `PipeEvents`, which guards itself.
    public let url: String
    private var socket = nng_socket()
    private let events = PipeEvents()
    private let eventsReference: Unmanaged<PipeEvents>
    private let closed = ClosedFlag()
    private let inbox = FrameInbox()
    /// Whether several peers may connect at once (sends then name their connection).
    private let manyPeers: Bool

    private init(url: String, maxMessageBytes: Int, manyPeers: Bool = false) throws {
        self.url = url
        self.manyPeers = manyPeers
        eventsReference = Unmanaged.passRetained(events)
        try check(manyPeers ? nng_pair1_open_poly(&socket) : nng_pair1_open(&socket), url: url, "open")
        try check(nng_socket_set_size(socket, "recv-size-max", maxMessageBytes), url: url, "set recv-size-max")
        try check(nng_socket_set_ms(socket, "reconnect-time-min", 50), url: url, "set reconnect-time-min")
        try check(nng_socket_set_ms(socket, "reconnect-time-max", 500), url: url, "set reconnect-time-max")
        let callback: nng_pipe_cb = { pipe, event, context in
            guard let context else { return }
            Unmanaged<PipeEvents>.fromOpaque(context).takeUnretainedValue().record(event, pipe: Int(nng_pipe_id(pipe)))
        }
        let context = eventsReference.toOpaque()
        try check(nng_pipe_notify(socket, NNG_PIPE_EV_ADD_POST, callback, context), url: url, "pipe notify")
        try check(nng_pipe_notify(socket, NNG_PIPE_EV_REM_POST, callback, context), url: url, "pipe notify")
    }

    /// Dials `url` (tcp://, tls+tcp://, ipc://, inproc://) in the background: the peer may
    /// start later. A `tls+tcp://` URL needs `tls` (a client configuration) and only it may
    /// have one.
    public static func dial(_ url: String, maxMessageBytes: Int, tls: TLSConfiguration? = nil) throws -> PairSocket {
        try TLSConfiguration.checkPairing(url: url, tls: tls, role: .client)
        let s = try PairSocket(url: url, maxMessageBytes: maxMessageBytes)
        var dialer = nng_dialer()
        try check(nng_dialer_create(&dialer, s.socket, url), url: url, "dial")
        if let tls {
            let config = try tls.nngConfiguration(host: TLSConfiguration.hostAndPort(url)?.host)
            defer { nng_tls_config_free(config) }  // the dialer holds its own reference
            try check(nng_dialer_set_ptr(dialer, NNG_OPT_TLS_CONFIG, UnsafeMutableRawPointer(config)), url: url, "TLS setup")
        }
        try check(nng_dialer_start(dialer, Int32(NNG_FLAG_NONBLOCK)), url: url, "dial")
        return s
    }

    /// Listens on `url`; fails at once if the address is taken or malformed. A `tls+tcp://`
    /// URL needs `tls` (a server configuration) and only it may have one. With `manyPeers`,
    /// several peers may be connected at once (replies go back on the connection asked).
    public static func listen(
        _ url: String, maxMessageBytes: Int, tls: TLSConfiguration? = nil, manyPeers: Bool = false
    ) throws -> PairSocket {
        try TLSConfiguration.checkPairing(url: url, tls: tls, role: .server)
        let s = try PairSocket(url: url, maxMessageBytes: maxMessageBytes, manyPeers: manyPeers)
        var listener = nng_listener()
        try check(nng_listener_create(&listener, s.socket, url), url: url, "listen")
        if let tls {
            let config = try tls.nngConfiguration(host: nil)
            defer { nng_tls_config_free(config) }
            try check(nng_listener_set_ptr(listener, NNG_OPT_TLS_CONFIG, UnsafeMutableRawPointer(config)), url: url, "TLS setup")
        }
        try check(nng_listener_start(listener, 0), url: url, "listen")
        return s
    }

    deinit {
        close()
        eventsReference.release()
    }

    public func close() {
        if closed.set() { nng_close(socket) }
    }

    public var isConnected: Bool { events.isConnected }
    public var connectionCount: Int { events.snapshot.added }
    public var disconnectionCount: Int { events.snapshot.removed }

    public func onConnectionChange(_ handler: @escaping @Sendable (ConnectionEvent) -> Void) {
        events.subscribe(handler)
    }

    public func send(_ frame: [UInt8], timeout: Double, completion: @escaping @Sendable ((any Error)?) -> Void) {
        send(frame, pipe: nil, timeout: timeout, completion: completion)
    }

    public func send(_ frame: [UInt8], on connection: Int, timeout: Double, completion: @escaping @Sendable ((any Error)?) -> Void) {
        send(frame, pipe: manyPeers ? connection : nil, timeout: timeout, completion: completion)
    }

    public func isOpen(_ connection: Int) -> Bool { events.isOpen(connection) }

    private func send(_ frame: [UInt8], pipe: Int?, timeout: Double, completion: @escaping @Sendable ((any Error)?) -> Void) {
        var message: OpaquePointer? = nil
        let allocated = nng_msg_alloc(&message, 0)
        guard allocated == 0, let message else { return completion(TransportError.nng(allocated, url: url, "message alloc")) }
        let appended = frame.withUnsafeBytes { nng_msg_append(message, $0.baseAddress, $0.count) }
        guard appended == 0 else {
            nng_msg_free(message)
            return completion(TransportError.nng(appended, url: url, "message append"))
        }
        if let pipe { nng_msg_set_pipe(message, nng_pipe(id: UInt32(truncatingIfNeeded: pipe))) }
        // Most sends are taken at once: then no aio, no callback thread, no wake-up.
        let now = nng_sendmsg(socket, message, Int32(NNG_FLAG_NONBLOCK))
        if now == 0 { return completion(nil) }  // nng owns the message now
        guard now == Int32(NNG_EAGAIN.rawValue) else {
            nng_msg_free(message)
            return completion(TransportError.nng(now, url: url, "send"))
        }
        let (socket, url) = (self.socket, self.url)
        AioCall.start(timeout: timeout) { aio in
            nng_aio_set_msg(aio, message)
            nng_send_aio(socket, aio)
        } finish: { aio, rv in
            if rv != 0, let aio, let unsent = nng_aio_get_msg(aio) { nng_msg_free(unsent) }  // still ours
            completion(Self.error(rv, url: url, timeout: timeout))
        }
    }

    /// Frames are read by one thread of this socket's own, blocked in `nng_recvmsg` (no timeout:
    /// it returns when a frame arrives or the socket closes), which runs `completion` itself:
    /// the shortest path from the wire to a worker's compute or a waiting caller.
    @discardableResult
    public func receive(completion: @escaping @Sendable (Result<[UInt8], any Error>) -> Void) -> CancelHandle {
        receiveFromPeer { completion($0.map(\.bytes)) }
    }

    @discardableResult
    public func receiveFromPeer(completion: @escaping @Sendable (Result<PeerFrame, any Error>) -> Void) -> CancelHandle {
        inbox.receive(
            completion,
            start: { [socket, url, inbox] in
                let thread = Thread { inbox.read(socket: socket, url: url) }
                thread.name = "l2pd.pair.reader"
                thread.start()
            })
    }

    /// The error an operation's result code stands for (nil: none).
    static func error(_ rv: Int32, url: String, timeout: Double) -> (any Error)? {
        switch rv {
        case 0: return nil
        case Int32(NNG_ETIMEDOUT.rawValue):
            return TransportError(kind: .unreachable, url: url, detail: "no peer took the frame within \(timeout) s")
        case Int32(NNG_ECANCELED.rawValue): return CancellationError()
        default: return TransportError.nng(rv, url: url, "operation")
        }
    }
}

/// Frames read from a socket and the receives waiting for them.
final class FrameInbox: @unchecked Sendable {
    // @unchecked: guarded by `lock`.
    typealias Completion = @Sendable (Result<PeerFrame, any Error>) -> Void
    private let lock = NSLock()
    private var waiting: [(id: UInt64, completion: Completion)] = []
    private var frames: [PeerFrame] = []
    private var failure: (any Error)?
    private var reading = false
    private var nextID: UInt64 = 0

    /// Hands the next frame to `completion`; `start` starts the reader the first time.
    func receive(_ completion: @escaping Completion, start: () -> Void) -> CancelHandle {
        let handle = CancelHandle()
        enum Now {
            case wait(UInt64, startReader: Bool)
            case frame(PeerFrame)
            case failed(any Error)
        }
        let now = lock.withLock { () -> Now in
            if !frames.isEmpty { return .frame(frames.removeFirst()) }
            if let failure { return .failed(failure) }
            let id = nextID
            nextID += 1
            waiting.append((id, completion))
            defer { reading = true }
            return .wait(id, startReader: !reading)
        }
        switch now {
        case .frame(let frame): DispatchQueue.global().async { completion(.success(frame)) }  // not on the caller's stack
        case .failed(let error): DispatchQueue.global().async { completion(.failure(error)) }
        case .wait(let id, let startReader):
            if startReader { start() }
            handle.set { [self] in
                let cancelled = lock.withLock { () -> Completion? in
                    guard let index = waiting.firstIndex(where: { $0.id == id }) else { return nil }
                    return waiting.remove(at: index).completion
                }
                cancelled?(.failure(CancellationError()))
            }
        }
        return handle
    }

    /// The reader thread's loop: until the socket closes, each frame goes to the oldest waiting
    /// receive (on this thread) or waits for the next one.
    func read(socket: nng_socket, url: String) {
        while true {
            var message: OpaquePointer? = nil
            let rv = nng_recvmsg(socket, &message, 0)
            guard rv == 0, let message else {
                if rv == Int32(NNG_ECLOSED.rawValue) {
                    let error = TransportError(kind: .closed, url: url, detail: "closed")
                    let stranded = lock.withLock { () -> [Completion] in
                        failure = error
                        defer { waiting = [] }
                        return waiting.map(\.completion)
                    }
                    for completion in stranded { completion(.failure(error)) }
                    return
                }
                continue  // a failed read (out of memory, say) is not the end of the socket
            }
            let frame = PeerFrame(
                connection: Int(nng_pipe_id(nng_msg_get_pipe(message))),
                bytes: [UInt8](UnsafeRawBufferPointer(start: nng_msg_body(message), count: nng_msg_len(message))))
            nng_msg_free(message)
            let completion = lock.withLock { () -> Completion? in
                if waiting.isEmpty {
                    frames.append(frame)
                    return nil
                }
                return waiting.removeFirst().completion
            }
            completion?(.success(frame))
        }
    }
}

/// Pipes (connections) added and removed, and who wants to hear of them; updated from nng's
/// own threads.
final class PipeEvents: @unchecked Sendable {
    // @unchecked: guarded by `lock`.
    private let lock = NSLock()
    private var added = 0
    private var removed = 0
    /// The pipes connected now.
    private var open: Set<Int> = []
    private var handlers: [@Sendable (ConnectionEvent) -> Void] = []

    func record(_ event: nng_pipe_ev, pipe: Int) {
        let (change, handlers) = lock.withLock { () -> (ConnectionEvent?, [@Sendable (ConnectionEvent) -> Void]) in
            if event == NNG_PIPE_EV_ADD_POST {
                added += 1
                open.insert(pipe)
                return (.connected, self.handlers)
            }
            if event == NNG_PIPE_EV_REM_POST {
                removed += 1
                open.remove(pipe)
                return (.disconnected, self.handlers)
            }
            return (nil, [])
        }
        if let change { for handler in handlers { handler(change) } }
    }

    func subscribe(_ handler: @escaping @Sendable (ConnectionEvent) -> Void) { lock.withLock { handlers.append(handler) } }

    var snapshot: (added: Int, removed: Int) { lock.withLock { (added, removed) } }
    var isConnected: Bool { lock.withLock { added > removed } }
    func isOpen(_ pipe: Int) -> Bool { lock.withLock { open.contains(pipe) } }
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
    var isSet: Bool { lock.withLock { value } }
}
