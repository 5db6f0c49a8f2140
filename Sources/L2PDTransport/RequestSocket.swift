import CNNG
import Foundation

/// Client side of the coordinator's request/reply service (req0). The request resend timer is
/// off: a generation request is never sent twice behind the caller's back. Each request runs on
/// an nng context of its own with its own timeouts, so one socket serves concurrent callers.
public final class RequestSocket: @unchecked Sendable {
    // @unchecked: `socket` is written only in init; nng sockets and contexts are thread-safe.
    public let url: String
    private var socket = nng_socket()

    public init(dialing url: String, maxMessageBytes: Int = 64 << 20) throws {
        self.url = url
        try check(nng_req0_open(&socket), url: url, "open")
        try check(nng_socket_set_ms(socket, "req:resend-time", -1), url: url, "disable resend")
        try check(nng_socket_set_size(socket, "recv-size-max", maxMessageBytes), url: url, "set recv-size-max")
        try check(nng_dial(socket, url, nil, Int32(NNG_FLAG_NONBLOCK)), url: url, "dial")
    }

    deinit { nng_close(socket) }

    /// Sends `bytes` (a peer must take them within `connectTimeout` seconds) and returns the
    /// reply (within `timeout` seconds).
    public func request(_ bytes: [UInt8], timeout: Double, connectTimeout: Double = 3) async throws -> [UInt8] {
        var context = nng_ctx()
        try check(nng_ctx_open(&context, socket), url: url, "context open")
        defer { nng_ctx_close(context) }
        var message: OpaquePointer? = nil
        try check(nng_msg_alloc(&message, 0), url: url, "message alloc")
        guard let message else { throw TransportError.nng(Int32(NNG_ENOMEM.rawValue), url: url, "message alloc") }
        let appended = bytes.withUnsafeBytes { nng_msg_append(message, $0.baseAddress, $0.count) }
        guard appended == 0 else {
            nng_msg_free(message)
            throw TransportError.nng(appended, url: url, "message append")
        }
        let ctx = context
        let sent = await AsyncIO.run(timeout: connectTimeout) { aio in
            nng_aio_set_msg(aio, message)
            nng_ctx_send(ctx, aio)
        } finish: { aio, rv in
            if rv != 0, let aio, let unsent = nng_aio_get_msg(aio) { nng_msg_free(unsent) }
            return rv
        }
        if sent == Int32(NNG_ETIMEDOUT.rawValue) {
            throw TransportError(kind: .unreachable, url: url, detail: "no coordinator answered within \(connectTimeout) s")
        }
        if sent == Int32(NNG_ECANCELED.rawValue) { throw CancellationError() }
        try check(sent, url: url, "send")
        let (received, reply) = await AsyncIO.run(timeout: timeout) { aio in
            nng_ctx_recv(ctx, aio)
        } finish: { aio, rv -> (Int32, [UInt8]) in
            guard rv == 0, let aio, let message = nng_aio_get_msg(aio) else { return (rv, []) }
            defer { nng_msg_free(message) }
            return (0, [UInt8](UnsafeRawBufferPointer(start: nng_msg_body(message), count: nng_msg_len(message))))
        }
        if received == Int32(NNG_ETIMEDOUT.rawValue) {
            throw TransportError(kind: .timeout, url: url, detail: "no reply within \(timeout) s")
        }
        if received == Int32(NNG_ECANCELED.rawValue) { throw CancellationError() }
        try check(received, url: url, "receive")
        return reply
    }
}
