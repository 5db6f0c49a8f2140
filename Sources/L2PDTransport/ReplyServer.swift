import CNNG
import Foundation

/// Server side of the coordinator's request/reply service (rep0) that answers many requests at
/// once: each of `contexts` nng contexts receives one request, awaits the handler's reply and
/// sends it, as nng asynchronous operations (no thread waits on nng). Requests beyond
/// `contexts` wait inside nng until a context is free.
public final class ReplyServer: @unchecked Sendable {
    // @unchecked: `socket` is written once in init; nng sockets are thread-safe.
    public let url: String
    private var socket = nng_socket()
    private let closed = ClosedFlag()

    /// Messages beyond `maxMessageBytes` are dropped by nng before they are read (the client's
    /// connection is reset); keep it above the largest request the handler refuses politely.
    public init(listening url: String, maxMessageBytes: Int = 4 << 20) throws {
        self.url = url
        try check(nng_rep0_open(&socket), url: url, "open")
        try check(nng_socket_set_size(socket, "recv-size-max", maxMessageBytes), url: url, "set recv-size-max")
        try check(nng_listen(socket, url, nil, 0), url: url, "listen")
    }

    deinit { close() }

    /// Stops serving: requests in flight get no reply, `serve` returns.
    public func close() {
        if closed.set() { nng_close(socket) }
    }

    /// Serves until `close` (or until the calling task is cancelled): `handler` turns each
    /// request into its reply. Returns once every context has stopped.
    public func serve(contexts: Int, handler: @escaping @Sendable ([UInt8]) async -> [UInt8]) async throws {
        precondition(contexts > 0)
        var opened: [nng_ctx] = []
        for _ in 0..<contexts {
            var context = nng_ctx()
            let rv = nng_ctx_open(&context, socket)
            if rv != 0 {
                for c in opened { nng_ctx_close(c) }
                throw TransportError.nng(rv, url: url, "context open")
            }
            opened.append(context)
        }
        await withTaskGroup(of: Void.self) { group in
            for context in opened {
                group.addTask { await Self.serveContext(context, handler: handler) }
            }
        }
    }

    private static func serveContext(_ context: nng_ctx, handler: @Sendable ([UInt8]) async -> [UInt8]) async {
        defer { nng_ctx_close(context) }
        while !Task.isCancelled {
            let (received, request) = await AsyncIO.run { aio in
                nng_ctx_recv(context, aio)
            } finish: { aio, rv -> (Int32, [UInt8]) in
                guard rv == 0, let aio, let message = nng_aio_get_msg(aio) else { return (rv, []) }
                defer { nng_msg_free(message) }
                return (0, [UInt8](UnsafeRawBufferPointer(start: nng_msg_body(message), count: nng_msg_len(message))))
            }
            if received == Int32(NNG_ECLOSED.rawValue) || received == Int32(NNG_ECANCELED.rawValue) { return }
            guard received == 0 else { continue }
            let reply = await handler(request)
            var out: OpaquePointer? = nil
            guard nng_msg_alloc(&out, 0) == 0, let out else { continue }
            let appended = reply.withUnsafeBytes { nng_msg_append(out, $0.baseAddress, $0.count) }
            guard appended == 0 else {
                nng_msg_free(out)
                continue
            }
            let sent = await AsyncIO.run { aio in
                nng_aio_set_msg(aio, out)
                nng_ctx_send(context, aio)
            } finish: { aio, rv in
                if rv != 0, let aio, let unsent = nng_aio_get_msg(aio) { nng_msg_free(unsent) }  // still ours
                return rv
            }
            if sent == Int32(NNG_ECLOSED.rawValue) { return }
        }
    }
}
