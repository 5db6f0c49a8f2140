import CNNG
import Foundation

/// One HTTP request as a handler sees it.
public struct HTTPRequest: Sendable {
    public var method: String
    /// Path and query, as sent.
    public var uri: String
    public var body: [UInt8]
}

/// One complete HTTP response.
public struct HTTPResponse: Sendable {
    public var status: UInt16
    public var contentType: String
    public var body: [UInt8]
    public init(status: UInt16 = 200, contentType: String = "application/json", body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }
}

/// A small HTTP/1.1 server on libnng's HTTP server. Each route is a method and an exact path;
/// its handler gets the request (body collected up to `maxBodyBytes`) and, from any thread,
/// either answers once with `exchange.respond` or takes the connection over with
/// `exchange.stream` (server-sent events): nng's I/O threads are never held while the answer
/// is computed. Unknown paths get nng's 404, wrong methods its 405.
public final class HTTPServer: @unchecked Sendable {
    // @unchecked: `server` is set once in init; nng's server is thread-safe.
    public typealias Handler = @Sendable (HTTPRequest, HTTPExchange) -> Void

    public let url: String
    private var server: OpaquePointer?
    private var routes: [Unmanaged<Route>] = []
    private let stopped = ClosedFlag()

    final class Route: Sendable {
        let handler: Handler
        init(_ handler: @escaping Handler) { self.handler = handler }
    }

    /// Binds `url` (`http://HOST:PORT`); serving starts with `start`.
    public init(url: String) throws {
        self.url = url
        var parsed: UnsafeMutablePointer<nng_url>? = nil
        try check(nng_url_parse(&parsed, url), "parse URL")
        defer { nng_url_free(parsed) }
        var held: OpaquePointer? = nil
        try check(nng_http_server_hold(&held, parsed), "create server")
        server = held
    }

    deinit {
        stop()
        routes.forEach { $0.release() }
    }

    public func route(_ method: String, _ path: String, maxBodyBytes: Int = 1 << 20, _ handler: @escaping Handler) throws {
        var h: OpaquePointer? = nil
        try check(nng_http_handler_alloc(&h, path, { aio in HTTPServer.dispatch(aio) }), "handler for \(path)")
        let route = Unmanaged.passRetained(Route(handler))
        routes.append(route)
        try check(nng_http_handler_set_method(h, method), "method of \(path)")
        try check(nng_http_handler_collect_body(h, true, maxBodyBytes), "body limit of \(path)")
        try check(nng_http_handler_set_data(h, route.toOpaque(), nil), "data of \(path)")
        try check(nng_http_server_add_handler(server, h), "route \(method) \(path)")
    }

    public func start() throws { try check(nng_http_server_start(server), "start") }

    public func stop() {
        guard stopped.set(), let server else { return }
        nng_http_server_stop(server)
        nng_http_server_release(server)
    }

    /// Called by nng for every request that matches a route.
    private static func dispatch(_ aio: OpaquePointer?) {
        guard let aio,
            let request = nng_aio_get_input(aio, 0).map({ OpaquePointer($0) }),
            let handler = nng_aio_get_input(aio, 1).map({ OpaquePointer($0) }),
            let connection = nng_aio_get_input(aio, 2).map({ OpaquePointer($0) }),
            let data = nng_http_handler_get_data(handler)
        else { return }
        let route = Unmanaged<Route>.fromOpaque(data).takeUnretainedValue()
        var body: UnsafeMutableRawPointer? = nil
        var size = 0
        nng_http_req_get_data(request, &body, &size)
        let copy = HTTPRequest(
            method: String(cString: nng_http_req_get_method(request)), uri: String(cString: nng_http_req_get_uri(request)),
            body: body.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: size)) } ?? [])
        route.handler(copy, HTTPExchange(aio: aio, request: request, connection: connection))
    }
}

/// One request waiting for its answer: a complete response, or a stream; used exactly once.
public final class HTTPExchange: @unchecked Sendable {
    // @unchecked: the aio, request and connection belong to this object until `respond` or
    // `stream` hands them back to nng (guarded by `done`).
    private let aio: OpaquePointer
    private let request: OpaquePointer
    private let connection: OpaquePointer
    private let done = ClosedFlag()

    init(aio: OpaquePointer, request: OpaquePointer, connection: OpaquePointer) {
        self.aio = aio
        self.request = request
        self.connection = connection
    }

    /// Takes the connection over and sends a 200 header with `contentType`; the caller then
    /// writes the body through the stream and closes it. Nil if the exchange was answered.
    public func stream(contentType: String) -> HTTPStream? {
        guard done.set() else { return nil }
        guard nng_http_hijack(connection) == 0 else {
            nng_aio_finish(aio, Int32(NNG_ECLOSED.rawValue))
            return nil
        }
        nng_aio_finish(aio, 0)  // no response object: the stream writes its own
        nng_http_req_free(request)
        let stream = HTTPStream(connection: connection)
        stream.write(
            Array(
                "HTTP/1.1 200 OK\r\nContent-Type: \(contentType)\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n".utf8))
        return stream
    }

    public func respond(_ response: HTTPResponse) {
        guard done.set() else { return }
        var res: OpaquePointer? = nil
        guard nng_http_res_alloc(&res) == 0, let res else {
            nng_aio_finish(aio, Int32(NNG_ENOMEM.rawValue))
            return
        }
        nng_http_res_set_status(res, response.status)
        nng_http_res_set_header(res, "Content-Type", response.contentType)
        _ = response.body.withUnsafeBytes { nng_http_res_copy_data(res, $0.baseAddress, $0.count) }
        nng_aio_set_output(aio, 0, UnsafeMutableRawPointer(res))
        nng_aio_finish(aio, 0)
    }
}

/// The body of a taken-over HTTP connection, written in order on a queue of its own (writes
/// block until the client has the bytes). A write after the client went away is dropped.
public final class HTTPStream: @unchecked Sendable {
    // @unchecked: `connection` is only used on `queue`; `broken` is guarded by `lock`.
    private let connection: OpaquePointer
    private let queue = DispatchQueue(label: "l2pd.http.stream")
    private let lock = NSLock()
    private var broken = false
    private let closed = ClosedFlag()

    init(connection: OpaquePointer) { self.connection = connection }

    public func write(_ bytes: [UInt8]) {
        queue.async { [self] in
            guard !clientGone, !bytes.isEmpty else { return }
            var aio: OpaquePointer? = nil
            guard nng_aio_alloc(&aio, nil, nil) == 0, let aio else {
                markBroken()
                return
            }
            defer { nng_aio_free(aio) }
            var copy = bytes
            copy.withUnsafeMutableBytes { buffer in
                var iov = nng_iov(iov_buf: buffer.baseAddress, iov_len: buffer.count)
                nng_aio_set_iov(aio, 1, &iov)
                nng_aio_set_timeout(aio, 30_000)
                nng_http_conn_write_all(connection, aio)
                nng_aio_wait(aio)
            }
            if nng_aio_result(aio) != 0 { markBroken() }
        }
    }

    /// Whether a write has failed: the client went away (or stopped reading for 30 s).
    public var clientGone: Bool { lock.withLock { broken } }

    private func markBroken() { lock.withLock { broken = true } }

    /// Ends the body and closes the connection (after every write before it).
    public func close() {
        guard closed.set() else { return }
        queue.async { [self] in nng_http_conn_close(connection) }
    }
}

extension HTTPServer {
    fileprivate func check(_ rv: Int32, _ what: String) throws {
        guard rv != 0 else { return }
        throw TransportError(kind: .nng, url: url, detail: "HTTP \(what) failed: \(String(cString: nng_strerror(rv)))")
    }
}
