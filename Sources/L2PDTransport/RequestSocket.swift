import CNNG
import Foundation

/// Client side of the coordinator's request/reply service (req0). The request resend timer is
/// off: a generation request is never sent twice behind the caller's back.
public final class RequestSocket: @unchecked Sendable {
    public let url: String
    private var socket = nng_socket()

    public init(dialing url: String, maxMessageBytes: Int = 64 << 20) throws {
        self.url = url
        try check(nng_req0_open(&socket), "open")
        try check(nng_socket_set_ms(socket, "req:resend-time", -1), "disable resend")
        try check(nng_socket_set_size(socket, "recv-size-max", maxMessageBytes), "set recv-size-max")
        try check(nng_dial(socket, url, nil, Int32(NNG_FLAG_NONBLOCK)), "dial")
    }

    deinit { nng_close(socket) }

    /// Blocking request: sends `bytes` and waits up to `timeout` seconds for the reply.
    public func request(_ bytes: [UInt8], timeout: Double, connectTimeout: Double = 3) throws -> [UInt8] {
        try check(nng_socket_set_ms(socket, "send-timeout", Int32(connectTimeout * 1000)), "set send-timeout")
        try check(nng_socket_set_ms(socket, "recv-timeout", Int32(min(timeout, 86_400) * 1000)), "set recv-timeout")
        var rv = bytes.withUnsafeBytes { nng_send(socket, UnsafeMutableRawPointer(mutating: $0.baseAddress), $0.count, 0) }
        if rv == Int32(NNG_ETIMEDOUT.rawValue) {
            throw TransportError(kind: .unreachable, url: url, detail: "no coordinator answered within \(connectTimeout) s")
        }
        try check(rv, "send")
        var buffer: UnsafeMutableRawPointer? = nil
        var size = 0
        rv = withUnsafeMutablePointer(to: &buffer) { nng_recv(socket, UnsafeMutableRawPointer($0), &size, Int32(NNG_FLAG_ALLOC)) }
        if rv == Int32(NNG_ETIMEDOUT.rawValue) { throw TransportError(kind: .timeout, url: url, detail: "no reply within \(timeout) s") }
        try check(rv, "receive")
        defer { nng_free(buffer, size) }
        return [UInt8](UnsafeRawBufferPointer(start: buffer, count: size))
    }

    private func check(_ rv: Int32, _ what: String) throws {
        guard rv != 0 else { return }
        throw TransportError(kind: .nng, url: url, detail: "\(what) failed: \(String(cString: nng_strerror(rv)))")
    }
}
