import CNNG
import Foundation

/// Server side of the coordinator's request/reply service (rep0) that answers many requests at
/// once: each of `contexts` nng contexts receives one request, hands it to the handler and sends
/// its reply, on a dedicated thread of its own (never Swift's cooperative pool). Requests beyond
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
        try check(nng_rep0_open(&socket), "open")
        try check(nng_socket_set_size(socket, "recv-size-max", maxMessageBytes), "set recv-size-max")
        try check(nng_listen(socket, url, nil, 0), "listen")
    }

    deinit { close() }

    /// Stops serving: requests in flight get no reply, `serve` returns.
    public func close() {
        if closed.set() { nng_close(socket) }
    }

    /// Serves until `close`: `handler` (called on the context's own thread, so it may block)
    /// turns each request into its reply. Returns once every context has stopped.
    public func serve(contexts: Int, handler: @escaping @Sendable ([UInt8]) -> [UInt8]) throws {
        precondition(contexts > 0)
        let group = DispatchGroup()
        var failure: TransportError?
        for i in 0..<contexts {
            var context = nng_ctx()
            let rv = nng_ctx_open(&context, socket)
            if rv != 0 {
                failure = TransportError(kind: .nng, url: url, detail: "context open failed: \(String(cString: nng_strerror(rv)))")
                break
            }
            group.enter()
            let thread = Thread { [self, context] in
                serveContext(context, handler: handler)
                group.leave()
            }
            thread.name = "l2pd.reply.\(i)"
            thread.start()
        }
        if let failure {
            close()
            group.wait()
            throw failure
        }
        group.wait()
    }

    private func serveContext(_ context: nng_ctx, handler: ([UInt8]) -> [UInt8]) {
        var aio: OpaquePointer? = nil
        guard nng_aio_alloc(&aio, nil, nil) == 0, let aio else { return }
        defer {
            nng_ctx_close(context)
            nng_aio_free(aio)
        }
        while true {
            nng_ctx_recv(context, aio)
            nng_aio_wait(aio)
            let received = nng_aio_result(aio)
            if received == Int32(NNG_ECLOSED.rawValue) { return }
            guard received == 0, let message = nng_aio_get_msg(aio) else { continue }
            let request = [UInt8](UnsafeRawBufferPointer(start: nng_msg_body(message), count: nng_msg_len(message)))
            nng_msg_free(message)
            let reply = handler(request)
            var out: OpaquePointer? = nil
            guard nng_msg_alloc(&out, 0) == 0, let out else { continue }
            let appended = reply.withUnsafeBytes { nng_msg_append(out, $0.baseAddress, $0.count) }
            guard appended == 0 else {
                nng_msg_free(out)
                continue
            }
            nng_aio_set_msg(aio, out)
            nng_ctx_send(context, aio)
            nng_aio_wait(aio)
            let sent = nng_aio_result(aio)
            if sent != 0 { nng_msg_free(out) }  // on failure the message stays ours
            if sent == Int32(NNG_ECLOSED.rawValue) { return }
        }
    }

    private func check(_ rv: Int32, _ what: String) throws {
        guard rv != 0 else { return }
        throw TransportError(kind: .nng, url: url, detail: "\(what) failed: \(String(cString: nng_strerror(rv)))")
    }
}
