import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A minimal blocking HTTP/1.1 client over a POSIX socket, for `l2pd loadtest` against the
/// coordinator's HTTP API: one POST per connection (`Connection: close`), the body read to the
/// end, server-sent events handed over as they arrive.
public enum HTTPClient {
    public struct Target: Sendable, Equatable {
        public var host: String
        public var port: UInt16
        public var path: String
    }

    /// `http://HOST:PORT[/PATH]` with a numeric IPv4 host or `localhost`.
    public static func parse(_ url: String) throws -> Target {
        guard url.hasPrefix("http://") else { throw TransportError(kind: .nng, url: url, detail: "not an http:// URL") }
        let rest = url.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(authority.count)
        let parts = authority.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else {
            throw TransportError(kind: .nng, url: url, detail: "expected http://HOST:PORT")
        }
        let host = parts[0] == "localhost" ? "127.0.0.1" : String(parts[0])
        return Target(host: host, port: port, path: path.isEmpty ? "/" : String(path))
    }

    /// POSTs `body` to `path` and returns the status; every `data:` line of a server-sent event
    /// stream goes to `onEvent` as it arrives, any other body is returned whole.
    public static func post(
        _ target: Target, path: String, body: [UInt8], headers: [(name: String, value: String)] = [], timeout: Double,
        onEvent: (String) -> Void
    ) throws -> (status: Int, body: String) {
        try exchange(target, method: "POST", path: path, body: body, headers: headers, timeout: timeout, onEvent: onEvent)
    }

    /// GETs `path` and returns the status and body.
    public static func get(
        _ target: Target, path: String, headers: [(name: String, value: String)] = [], timeout: Double
    ) throws -> (status: Int, body: String) {
        try exchange(target, method: "GET", path: path, body: [], headers: headers, timeout: timeout) { _ in }
    }

    static func exchange(
        _ target: Target, method: String, path: String, body: [UInt8], headers: [(name: String, value: String)], timeout: Double,
        onEvent: (String) -> Void
    ) throws -> (status: Int, body: String) {
        let url = "http://\(target.host):\(target.port)\(path)"
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TransportError(kind: .nng, url: url, detail: "socket failed") }
        defer { close(fd) }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(target.port.bigEndian)
        guard inet_pton(AF_INET, target.host, &address.sin_addr) == 1 else {
            throw TransportError(kind: .nng, url: url, detail: "host must be a numeric IPv4 address or localhost")
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TransportError(kind: .unreachable, url: url, detail: "connection refused") }
        let extra = headers.map { "\($0.name): \($0.value)\r\n" }.joined()
        let head =
            "\(method) \(path) HTTP/1.1\r\nHost: \(target.host):\(target.port)\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.count)\r\n\(extra)Connection: close\r\n\r\n"
        let request = Array(head.utf8) + body
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TransportError(kind: .peerLost, url: url, detail: "send failed") }
            sent += n
        }
        var buffer = [UInt8](repeating: 0, count: 65536)
        var pending: [UInt8] = []
        var status: Int? = nil
        var streaming = false
        var whole: [UInt8] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 { throw TransportError(kind: .timeout, url: url, detail: "no reply within \(timeout) s") }
            if n == 0 { break }
            pending += buffer[0..<n]
            if status == nil {
                guard let end = find(Array("\r\n\r\n".utf8), in: pending) else { continue }
                let headers = String(decoding: pending[0..<end], as: UTF8.self)
                let fields = headers.split(separator: " ")
                guard fields.count >= 2, let code = Int(fields[1]) else {
                    throw TransportError(kind: .nng, url: url, detail: "unreadable status line")
                }
                status = code
                streaming = headers.lowercased().contains("content-type: text/event-stream")
                pending.removeFirst(end + 4)
            }
            if streaming {
                while let end = find(Array("\n\n".utf8), in: pending) {
                    let event = String(decoding: pending[0..<end], as: UTF8.self)
                    pending.removeFirst(end + 2)
                    for line in event.split(separator: "\n") where line.hasPrefix("data: ") { onEvent(String(line.dropFirst(6))) }
                }
            } else {
                whole += pending
                pending.removeAll()
            }
        }
        guard let status else { throw TransportError(kind: .peerLost, url: url, detail: "connection closed before a reply") }
        return (status, String(decoding: whole + pending, as: UTF8.self))
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<i + needle.count]) == needle { return i }
        }
        return nil
    }
}
