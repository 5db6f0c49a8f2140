import Foundation
import Testing

@testable import L2PDTransport

#if canImport(Glibc)
    import Glibc
#endif

/// A test client socket: connect, send raw bytes, read what arrives.
struct Client {
    let fd: Int32

    init(port: UInt16, timeout: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(status == 0, "connect")
    }

    func send(_ text: String) { _ = Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }

    /// Reads until `done` holds for what arrived, the peer closes, or the timeout passes.
    func read(until done: (String) -> Bool = { _ in false }) -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !done(String(decoding: received, as: UTF8.self)) {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// Whether the server closed the connection (a read returns end of file).
    func closedByServer() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }

    func close() { Glibc.close(fd) }
}

func echoServer(_ limits: HTTPServer.Limits = HTTPServer.Limits()) throws -> HTTPServer {
    let server = try HTTPServer(url: "http://127.0.0.1:0", limits: limits)
    try server.route("POST", "/echo", maxBodyBytes: 1000) { request, exchange in
        exchange.respond(HTTPResponse(contentType: "text/plain", body: request.body))
    }
    try server.route("GET", "/health") { _, exchange in exchange.respond(HTTPResponse(body: Array(#"{"ok":true}"#.utf8))) }
    try server.route("GET", "/events") { _, exchange in
        guard let stream = exchange.stream(contentType: "text/event-stream") else { return }
        for i in 0..<3 { stream.write(Array("data: \(i)\n\n".utf8)) }
        stream.close()
    }
    try server.start()
    return server
}

@Suite struct HTTPServerTests {
    @Test func keepAliveServesPipelinedRequestsInOrder() throws {
        let server = try echoServer()
        defer { server.stop() }
        let client = try Client(port: server.port)
        defer { client.close() }
        client.send("POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nonePOST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\ntwo")
        let text = client.read { $0.components(separatedBy: "HTTP/1.1 200").count == 3 && $0.hasSuffix("two") }
        #expect(text.hasSuffix("two"))
        #expect(text.range(of: "one")!.lowerBound < text.range(of: "two")!.lowerBound)
    }

    @Test func expectContinueGetsAnInterimResponse() throws {
        let server = try echoServer()
        defer { server.stop() }
        let client = try Client(port: server.port)
        defer { client.close() }
        client.send("POST /echo HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        #expect(client.read { $0.contains("\r\n\r\n") }.hasPrefix("HTTP/1.1 100 Continue"))
        client.send("hello")
        #expect(client.read { $0.hasSuffix("hello") }.hasSuffix("hello"))
    }

    @Test func streamsArriveWholeAndEndTheConnection() throws {
        let server = try echoServer()
        defer { server.stop() }
        let client = try Client(port: server.port)
        defer { client.close() }
        client.send("GET /events HTTP/1.1\r\n\r\n")
        let text = client.read()
        #expect(text.hasPrefix("HTTP/1.1 200 OK"))
        #expect(text.hasSuffix("data: 0\n\ndata: 1\n\ndata: 2\n\n"))
    }

    @Test func idleAndSlowConnectionsAreClosed() throws {
        var limits = HTTPServer.Limits()
        limits.idleSeconds = 0.3
        limits.requestSeconds = 0.3
        let server = try echoServer(limits)
        defer { server.stop() }
        let idle = try Client(port: server.port)
        defer { idle.close() }
        #expect(idle.closedByServer())
        let slow = try Client(port: server.port)
        defer { slow.close() }
        slow.send("POST /echo HTTP/1.1\r\nContent-Le")
        let text = slow.read()
        #expect(text.hasPrefix("HTTP/1.1 408"), "\(text)")
        #expect(text.contains("\"invalid_request_error\""))
    }

    /// At the cap, an idle connection makes room for a new one; when every connection is busy
    /// the newcomer gets a JSON 503 with Retry-After.
    @Test func theConnectionCapEvictsIdleConnectionsAndRefusesBeyondBusyOnes() throws {
        var limits = HTTPServer.Limits()
        limits.maxConnections = 8
        let server = try echoServer(limits)
        defer { server.stop() }
        let idle = try (0..<20).map { _ in try Client(port: server.port) }
        defer { idle.forEach { $0.close() } }
        let asking = try Client(port: server.port)
        defer { asking.close() }
        asking.send("GET /health HTTP/1.1\r\n\r\n")
        #expect(asking.read { $0.hasSuffix("{\"ok\":true}") }.hasPrefix("HTTP/1.1 200"))
        #expect(server.openConnections <= 8)

        // Eight connections each in the middle of a request: nothing idle to evict.
        let busy = try (0..<8).map { _ in try Client(port: server.port) }
        defer { busy.forEach { $0.close() } }
        for client in busy { client.send("POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc") }
        Thread.sleep(forTimeInterval: 0.2)
        let refused = try Client(port: server.port)
        defer { refused.close() }
        let text = refused.read()
        #expect(text.hasPrefix("HTTP/1.1 503"), "\(text)")
        #expect(text.contains("Retry-After: 1"))
    }

    @Test func stopClosesEveryConnection() throws {
        let server = try echoServer()
        let client = try Client(port: server.port)
        defer { client.close() }
        Thread.sleep(forTimeInterval: 0.1)
        server.stop()
        #expect(client.closedByServer())
    }
}

@Suite struct HTTPServerInputTests {
    /// A head trickled a byte at a time is still found (the scan resumes where it stopped), and
    /// a large pipelined request behind a slow one arrives whole, not cut.
    @Test func trickledHeadsAndLargePipelinedRequestsArriveWhole() throws {
        let server = try HTTPServer(url: "http://127.0.0.1:0")
        try server.route("POST", "/echo", maxBodyBytes: 100_000) { request, exchange in
            if request.body.first == UInt8(ascii: "s") { Thread.sleep(forTimeInterval: 0.3) }  // a slow handler
            exchange.respond(HTTPResponse(contentType: "text/plain", body: Array("\(request.body.count)".utf8)))
        }
        try server.start()
        defer { server.stop() }
        let client = try Client(port: server.port)
        defer { client.close() }
        for byte in "POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\n".utf8 { client.send(String(UnicodeScalar(byte))) }
        client.send("slow")
        let big = String(repeating: "x", count: 60_000)
        client.send("POST /echo HTTP/1.1\r\nContent-Length: \(big.utf8.count)\r\n\r\n\(big)")
        let text = client.read { $0.hasSuffix("60000") }
        #expect(text.hasSuffix("60000"), "\(text.suffix(200))")
        #expect(text.contains("\r\n\r\n4HTTP/1.1 200"))
    }

    @Test func headEndResumesFromWhereItStopped() {
        let bytes = Array("GET / HTTP/1.1\r\nA: b\r\n\r\nrest".utf8)
        #expect(HTTPServer.headEnd(bytes) == 20)
        #expect(HTTPServer.headEnd(bytes, from: 17) == 20)
        #expect(HTTPServer.headEnd(bytes, from: 21) == nil)
        #expect(HTTPServer.headEnd(Array("ab".utf8), from: 0) == nil)
    }
}
