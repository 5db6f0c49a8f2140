import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A small HTTP/1.1 server on POSIX sockets, with its own event-loop thread (`poll`). Each
/// route is a method and an exact path; its handler gets the request (body collected up to the
/// route's limit) on a Dispatch queue and, from any thread, either answers once with
/// `exchange.respond` or takes the connection over with `exchange.stream` (server-sent
/// events). At the connection cap the oldest idle connection is closed to admit a new one.
/// Every refusal is a JSON error: 400 for a malformed request, 404, 405 (with
/// `Allow`), 408 when a request does not arrive in time, 413, 431, 501 for chunked bodies,
/// 505, and 503 when the connection cap is reached. Idle keep-alive connections are closed.
public final class HTTPServer: @unchecked Sendable {
    // @unchecked: `routes` is written before `start` only; connections belong to the loop
    // thread; `inbox` is guarded by `lock`.
    public typealias Handler = @Sendable (HTTPRequest, HTTPExchange) -> Void

    /// Bounds on connections and on how long a client may take.
    public struct Limits: Sendable {
        /// Open connections at most; one beyond gets a 503 and is closed.
        public var maxConnections = 256
        /// Seconds a connection may stay open with no request begun.
        public var idleSeconds = 30.0
        /// Seconds from a request's first byte until its head and body are complete.
        public var requestSeconds = 10.0
        /// Bytes of request line and headers at most.
        public var maxHeadBytes = 16 << 10
        /// Seconds a response may wait for the client to read before the connection is dropped.
        public var writeStallSeconds = 30.0
        /// Bytes a streamed response may queue for a slow client before it is dropped.
        public var maxQueuedBytes = 4 << 20
        public init() {}
    }

    public let url: String
    public let limits: Limits
    /// The TCP port bound (useful when the URL asked for port 0).
    public private(set) var port: UInt16 = 0
    private var listener: Int32 = -1
    private var wakeRead: Int32 = -1
    private var wakeWrite: Int32 = -1
    private var routes: [String: [String: Route]] = [:]
    private var connections: [UInt64: Connection] = [:]
    private var nextConnectionID: UInt64 = 1
    private let lock = NSLock()
    private var inbox: [Outgoing] = []
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)
    private var thread: Thread?
    private let handlers = DispatchQueue(label: "l2pd.http.handlers", attributes: .concurrent)
    private let started = ClosedFlag()
    private let stopped = ClosedFlag()

    struct Route {
        let maxBodyBytes: Int
        let handler: Handler
    }

    /// What another thread asks the loop to do with a connection.
    struct Outgoing {
        var connection: UInt64
        var bytes: [UInt8]
        /// After these bytes: `.idle` back to reading requests, `.more` (a stream goes on), `.close`.
        var then: After
        enum After { case idle, more, close }
    }

    /// Binds `url` (`http://HOST:PORT`, numeric IPv4 or `localhost`; port 0 picks one);
    /// serving starts with `start`.
    public init(url: String, limits: Limits = Limits()) throws {
        self.url = url
        self.limits = limits
        let target = try HTTPClient.parse(url)
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw error("socket failed") }
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = target.port.bigEndian
        guard inet_pton(AF_INET, target.host, &address.sin_addr) == 1 else {
            Glibc.close(listener)
            throw error("'\(target.host)' is not a numeric IPv4 address")
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 512) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(listener)
            throw error("cannot listen: \(reason)")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = UInt16(bigEndian: actual.sin_port)
        setNonBlocking(listener)
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else {
            Glibc.close(listener)
            throw error("pipe failed")
        }
        wakeRead = pipeEnds[0]
        wakeWrite = pipeEnds[1]
        setNonBlocking(wakeRead)
        setNonBlocking(wakeWrite)
    }

    deinit {
        stop()
        if listener >= 0 { Glibc.close(listener) }
        if wakeRead >= 0 { Glibc.close(wakeRead) }
        if wakeWrite >= 0 { Glibc.close(wakeWrite) }
    }

    /// Adds a route; call before `start`.
    public func route(_ method: String, _ path: String, maxBodyBytes: Int = 1 << 20, _ handler: @escaping Handler) throws {
        precondition(thread == nil, "routes are fixed once the server started")
        routes[path, default: [:]][method] = Route(maxBodyBytes: maxBodyBytes, handler: handler)
    }

    public func start() throws {
        guard started.set() else { return }
        let thread = Thread { [self] in
            runLoop()
            finished.signal()
        }
        thread.name = "l2pd.http"
        self.thread = thread
        thread.start()
    }

    /// Stops accepting, closes every connection and returns once the loop has ended.
    public func stop() {
        guard stopped.set() else { return }
        lock.withLock { stopping = true }
        wake()
        if thread != nil { finished.wait() }
    }

    /// Open connections now (for metrics and tests).
    public var openConnections: Int { lock.withLock { connectionCount } }
    private var connectionCount = 0

    // MARK: - Calls from other threads

    func send(_ outgoing: Outgoing) {
        lock.withLock { inbox.append(outgoing) }
        wake()
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    // MARK: - The loop

    final class Connection {
        let id: UInt64
        let fd: Int32
        var input: [UInt8] = []
        var output: [UInt8] = []
        var written = 0
        enum State { case reading, handling, streaming }
        var state = State.reading
        var closeAfterWrite = false
        var keepAlive = true
        var head: HTTPHead?
        var headLength = 0
        /// Where the search for the end of the head resumes (a slow client's head is not rescanned).
        var scanned = 0
        var continueSent = false
        /// Reading: when the idle or request deadline passes; writing: when a stall ends it.
        var deadline: UInt64
        var requestStarted = false
        let liveness: HTTPLiveness

        init(id: UInt64, fd: Int32, deadline: UInt64) {
            self.id = id
            self.fd = fd
            self.deadline = deadline
            liveness = HTTPLiveness()
        }

        var pendingOutput: Int { output.count - written }
    }

    private func runLoop() {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var acceptPausedUntil: UInt64 = 0
        while true {
            let (stop, messages) = lock.withLock { () -> (Bool, [Outgoing]) in
                defer { inbox.removeAll() }
                return (stopping, inbox)
            }
            if stop { break }
            for message in messages { apply(message) }
            let now = Self.now()
            for connection in Array(connections.values) where connection.deadline <= now { expire(connection) }

            var fds: [pollfd] = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            let accepting = now >= acceptPausedUntil
            fds.append(pollfd(fd: accepting ? listener : -1, events: Int16(POLLIN), revents: 0))
            let open = Array(connections.values)
            for c in open {
                // A connection whose pipelined input is full is not read until its request is served.
                var events = c.state != .reading && c.input.count >= limits.maxHeadBytes ? Int16(0) : Int16(POLLIN)
                if c.pendingOutput > 0 { events |= Int16(POLLOUT) }
                fds.append(pollfd(fd: c.fd, events: events, revents: 0))
            }
            // Sleep until a socket or the wake pipe is ready, or the nearest deadline.
            var deadlines = open.map(\.deadline)
            if !accepting { deadlines.append(acceptPausedUntil) }
            let waitMs = deadlines.min().map { Int32(clamping: ($0 > now ? $0 - now : 0) / 1_000_000 + 1) } ?? -1
            let ready = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), waitMs) }
            if ready <= 0 { continue }
            if fds[0].revents != 0 {
                var sink = [UInt8](repeating: 0, count: 256)
                while read(wakeRead, &sink, sink.count) > 0 {}
            }
            if fds[1].revents & Int16(POLLIN) != 0 {
                if !acceptAll() { acceptPausedUntil = Self.now() + 100_000_000 }  // out of descriptors: retry shortly
            }
            for (index, c) in open.enumerated() {
                let revents = fds[index + 2].revents
                guard revents != 0, connections[c.id] != nil else { continue }
                if revents & Int16(POLLOUT) != 0 { flush(c) }
                guard connections[c.id] != nil else { continue }
                if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { receive(c, buffer: &buffer) }
            }
        }
        finishWrites(within: 1.0)
        for c in Array(connections.values) { drop(c) }
    }

    /// At stop: applies what handlers last sent and lets queued responses reach their clients,
    /// for at most `seconds`, so answers finished before the stop are not cut.
    private func finishWrites(within seconds: Double) {
        let deadline = Self.now() + Self.nanoseconds(seconds)
        while true {
            let messages = lock.withLock { () -> [Outgoing] in
                defer { inbox.removeAll() }
                return inbox
            }
            for message in messages { apply(message) }
            let pending = connections.values.filter { $0.pendingOutput > 0 }
            let now = Self.now()
            guard !pending.isEmpty, now < deadline else { return }
            var fds = pending.map { pollfd(fd: $0.fd, events: Int16(POLLOUT), revents: 0) }
            let waitMs = Int32(clamping: (deadline - now) / 1_000_000 + 1)
            _ = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), waitMs) }
            for c in pending where connections[c.id] != nil { flush(c) }
        }
    }

    /// Accepts every pending connection; false when the process is out of descriptors.
    private func acceptAll() -> Bool {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM { return false }
                return true  // EAGAIN and transient errors
            }
            setNonBlocking(fd)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if connections.count >= limits.maxConnections,
                let idle = connections.values.filter({ $0.state == .reading && !$0.requestStarted && $0.pendingOutput == 0 })
                    .min(by: { $0.deadline < $1.deadline })
            {
                drop(idle)  // an idle keep-alive connection makes room for one that has something to ask
            }
            if connections.count >= limits.maxConnections {
                // Every connection is busy: a short JSON 503 (best effort), then close.
                let busy = HTTPResponse.error(
                    503, type: "busy", "this server has \(limits.maxConnections) connections open; try again later"
                ).serialized(keepAlive: false)
                _ = busy.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                Glibc.close(fd)
                continue
            }
            let id = nextConnectionID
            nextConnectionID += 1
            connections[id] = Connection(id: id, fd: fd, deadline: Self.now() + Self.nanoseconds(limits.idleSeconds))
            lock.withLock { connectionCount = connections.count }
        }
    }

    /// The most one connection buffers while reading: a head and the largest body any route takes.
    private lazy var inputCap: Int = limits.maxHeadBytes + (routes.values.flatMap(\.values).map(\.maxBodyBytes).max() ?? 0)

    private func receive(_ c: Connection, buffer: inout [UInt8]) {
        while true {
            // While a request is served, a pipelined one is buffered up to a head's size; beyond
            // that it waits in the socket (never read and dropped).
            let room = c.state == .reading ? buffer.count : min(buffer.count, limits.maxHeadBytes - c.input.count)
            if room <= 0 { break }
            let n = buffer.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, room, 0) }
            if n > 0 {
                c.input.append(contentsOf: buffer[0..<n])
                // At most one whole request is buffered before it is parsed; the rest waits in the
                // socket until this one is served.
                if c.state == .reading && c.input.count > inputCap { break }
                continue
            }
            if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                drop(c)  // the client went away
                return
            }
            break
        }
        if c.state == .reading { parse(c) }
    }

    /// Serves the next complete request in the input, or refuses a malformed one.
    private func parse(_ c: Connection) {
        guard c.state == .reading, !c.input.isEmpty else { return }
        if !c.requestStarted {
            c.requestStarted = true
            c.deadline = Self.now() + Self.nanoseconds(limits.requestSeconds)
        }
        if c.head == nil {
            guard let end = Self.headEnd(c.input, from: c.scanned) else {
                c.scanned = max(0, c.input.count - 3)
                if c.input.count > limits.maxHeadBytes {
                    refuse(c, 431, "the request head exceeds \(limits.maxHeadBytes) bytes")
                }
                return
            }
            guard end <= limits.maxHeadBytes else { return refuse(c, 431, "the request head exceeds \(limits.maxHeadBytes) bytes") }
            do {
                c.head = try HTTPHead.parse(c.input[0..<end])
            } catch {
                return refuse(c, error.status, error.message)
            }
            c.headLength = end + 4
            c.scanned = 0
        }
        guard let head = c.head else { return }
        guard let byMethod = routes[String(head.uri.prefix { $0 != "?" })] else {
            return refuse(c, 404, "no route for \(head.uri.prefix(200))", keepOpen: true)
        }
        guard let route = byMethod[head.method] else {
            let allow = byMethod.keys.sorted().joined(separator: ", ")
            return refuse(c, 405, "\(head.method) is not allowed here (allowed: \(allow))", keepOpen: true, headers: [("Allow", allow)])
        }
        guard head.contentLength <= route.maxBodyBytes else {
            return refuse(c, 413, "the body has \(head.contentLength) bytes; this route accepts at most \(route.maxBodyBytes)")
        }
        let total = c.headLength + head.contentLength
        guard c.input.count >= total else {
            if head.expectsContinue && !c.continueSent {
                c.continueSent = true
                queue(c, Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
            }
            return
        }
        let request = HTTPRequest(
            method: head.method, uri: head.uri, headers: head.headers, body: Array(c.input[c.headLength..<total]))
        c.input.removeFirst(total)
        c.keepAlive = head.keepAlive
        c.head = nil
        c.continueSent = false
        c.requestStarted = false
        c.state = .handling
        c.deadline = .max
        let exchange = HTTPExchange(server: self, connection: c.id, keepAlive: head.keepAlive, liveness: c.liveness)
        handlers.async { route.handler(request, exchange) }
    }

    /// Answers a request the server itself refuses; the connection closes after it unless the
    /// request was well formed and complete (404, 405).
    private func refuse(
        _ c: Connection, _ status: UInt16, _ message: String, keepOpen: Bool = false, headers: [(name: String, value: String)] = []
    ) {
        var keep = keepOpen
        if keepOpen, let head = c.head {
            // Skip the refused request's body, if it has arrived; otherwise close after the reply.
            let total = c.headLength + head.contentLength
            if c.input.count >= total && head.keepAlive { c.input.removeFirst(total) } else { keep = false }
        }
        c.head = nil
        c.requestStarted = false
        let type = status >= 500 ? "server_error" : "invalid_request_error"
        var response = HTTPResponse.error(status, type: type, message)
        response.headers += headers
        c.state = .handling
        apply(Outgoing(connection: c.id, bytes: response.serialized(keepAlive: keep), then: keep ? .idle : .close))
    }

    private func apply(_ message: Outgoing) {
        guard let c = connections[message.connection] else { return }
        switch message.then {
        case .more: c.state = .streaming
        case .close: c.closeAfterWrite = true
        case .idle: break
        }
        if !message.bytes.isEmpty { queue(c, message.bytes) }
        if message.then == .idle {
            c.state = .reading
            c.deadline = Self.now() + Self.nanoseconds(limits.idleSeconds)
        }
        if c.pendingOutput == 0 && c.closeAfterWrite {
            drop(c)
            return
        }
        if c.state == .streaming && c.pendingOutput > limits.maxQueuedBytes {
            drop(c)  // the client stopped reading
            return
        }
        if c.state == .reading && c.pendingOutput == 0 { parse(c) }
    }

    private func queue(_ c: Connection, _ bytes: [UInt8]) {
        c.output.append(contentsOf: bytes)
        flush(c)
    }

    private func flush(_ c: Connection) {
        while c.pendingOutput > 0 {
            let n = c.output.withUnsafeBytes {
                Glibc.send(c.fd, $0.baseAddress! + c.written, c.pendingOutput, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                c.written += n
                continue
            }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                // Wait for the client to read, but not for ever.
                if c.state != .reading { c.deadline = min(c.deadline, Self.now() + Self.nanoseconds(limits.writeStallSeconds)) }
                return
            }
            drop(c)
            return
        }
        c.output.removeAll(keepingCapacity: true)
        c.written = 0
        if c.state == .streaming || c.state == .handling { c.deadline = .max }
        if c.closeAfterWrite {
            drop(c)
        } else if c.state == .reading {
            parse(c)
        }
    }

    private func expire(_ c: Connection) {
        if c.state == .reading && c.requestStarted {
            refuse(c, 408, "the request did not arrive within \(limits.requestSeconds) s")
            if let still = connections[c.id] { still.deadline = Self.now() + Self.nanoseconds(1) }  // one last chance to flush
        } else {
            drop(c)  // idle, or a client that stopped reading
        }
    }

    private func drop(_ c: Connection) {
        guard connections.removeValue(forKey: c.id) != nil else { return }
        c.liveness.markGone()
        Glibc.close(c.fd)
        lock.withLock { connectionCount = connections.count }
    }

    /// The offset of the blank line ending the head, searching from `start`.
    static func headEnd(_ bytes: [UInt8], from start: Int = 0) -> Int? {
        guard bytes.count >= 4, start <= bytes.count - 4 else { return nil }
        for i in start...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i
        }
        return nil
    }

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
    private static func nanoseconds(_ seconds: Double) -> UInt64 { UInt64(max(0, seconds) * 1e9) }

    private func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    private func error(_ detail: String) -> TransportError {
        TransportError(kind: .nng, url: url, detail: "HTTP server: \(detail)")
    }
}

/// Whether the client of a connection is still there.
final class HTTPLiveness: Sendable {
    private let gone = Promise<Void>()
    func markGone() { gone.fulfil(.success(())) }
    var isGone: Bool { gone.isFulfilled }
    /// Returns once the client has gone away (or the waiting task is cancelled).
    func waitUntilGone() async { _ = try? await gone.value() }
}

/// One request waiting for its answer: a complete response, or a stream; used exactly once.
public final class HTTPExchange: Sendable {
    private let server: HTTPServer
    private let connection: UInt64
    private let keepAlive: Bool
    private let liveness: HTTPLiveness
    private let done = ClosedFlag()

    init(server: HTTPServer, connection: UInt64, keepAlive: Bool, liveness: HTTPLiveness) {
        self.server = server
        self.connection = connection
        self.keepAlive = keepAlive
        self.liveness = liveness
    }

    /// Whether the client has gone away.
    public var clientGone: Bool { liveness.isGone }

    /// Returns once the client has gone away; cancel the waiting task to stop waiting.
    public func waitUntilClientGone() async { await liveness.waitUntilGone() }

    public func respond(_ response: HTTPResponse) {
        guard done.set() else { return }
        server.send(
            .init(connection: connection, bytes: response.serialized(keepAlive: keepAlive), then: keepAlive ? .idle : .close))
    }

    /// Sends a 200 header with `contentType` and no length; the caller then writes the body
    /// through the stream and closes it (which closes the connection). Nil if already answered.
    public func stream(contentType: String) -> HTTPStream? {
        guard done.set() else { return nil }
        let head = "HTTP/1.1 200 OK\r\nContent-Type: \(contentType)\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
        server.send(.init(connection: connection, bytes: Array(head.utf8), then: .more))
        return HTTPStream(server: server, connection: connection, liveness: liveness)
    }
}

/// The body of a taken-over HTTP connection, written in order. Writes after the client went
/// away are dropped; a client that stops reading is disconnected.
public final class HTTPStream: Sendable {
    private let server: HTTPServer
    private let connection: UInt64
    private let liveness: HTTPLiveness
    private let closed = ClosedFlag()

    init(server: HTTPServer, connection: UInt64, liveness: HTTPLiveness) {
        self.server = server
        self.connection = connection
        self.liveness = liveness
    }

    public func write(_ bytes: [UInt8]) {
        guard !bytes.isEmpty, !liveness.isGone else { return }
        server.send(.init(connection: connection, bytes: bytes, then: .more))
    }

    /// Whether the client went away (or stopped reading).
    public var clientGone: Bool { liveness.isGone }

    /// Returns once the client has gone away; cancel the waiting task to stop waiting.
    public func waitUntilClientGone() async { await liveness.waitUntilGone() }

    /// Ends the body and closes the connection (after every write before it).
    public func close() {
        guard closed.set() else { return }
        server.send(.init(connection: connection, bytes: [], then: .close))
    }
}
