import Foundation

/// One HTTP request as a handler sees it.
public struct HTTPRequest: Sendable {
    public var method: String
    /// Path and query, as sent.
    public var uri: String
    public var headers: [(name: String, value: String)] = []
    public var body: [UInt8]

    public init(method: String, uri: String, headers: [(name: String, value: String)] = [], body: [UInt8]) {
        self.method = method
        self.uri = uri
        self.headers = headers
        self.body = body
    }

    /// The first header of that name (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// The path without the query.
    public var path: String { String(uri.prefix { $0 != "?" }) }
}

/// One complete HTTP response.
public struct HTTPResponse: Sendable {
    public var status: UInt16
    public var contentType: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(
        status: UInt16 = 200, contentType: String = "application/json", headers: [(name: String, value: String)] = [],
        body: [UInt8]
    ) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }

    /// `{"error": {"message": ..., "type": ...}}` with that status; 503 carries `Retry-After`.
    public static func error(_ status: UInt16, type: String, _ message: String) -> HTTPResponse {
        let object: [String: Any] = ["error": ["message": message, "type": type]]
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return HTTPResponse(
            status: status, headers: status == 503 ? [("Retry-After", "1")] : [], body: Array(body))
    }

    /// The bytes on the wire: status line, headers, body.
    func serialized(keepAlive: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(HTTPResponse.reason(status))\r\n"
        head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
        head += "Connection: \(keepAlive ? "keep-alive" : "close")\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + body
    }

    static func reason(_ status: UInt16) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: "Status \(status)"
        }
    }
}

/// The head of a request (request line and headers), parsed strictly.
struct HTTPHead {
    var method: String
    var uri: String
    var http10: Bool
    var headers: [(name: String, value: String)]
    var contentLength: Int
    var keepAlive: Bool
    var expectsContinue: Bool

    /// A request the server refuses before any handler sees it, with the status it gets.
    struct Refusal: Error {
        var status: UInt16
        var message: String
    }

    /// Parses the bytes before the blank line (the route then bounds `Content-Length`).
    static func parse(_ bytes: ArraySlice<UInt8>) throws(Refusal) -> HTTPHead {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw Refusal(status: 400, message: "the request head is not valid UTF-8")
        }
        var lines = text.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard requestLine.count == 3 else { throw Refusal(status: 400, message: "malformed request line") }
        let method = String(requestLine[0])
        let uri = String(requestLine[1])
        let version = requestLine[2]
        guard !method.isEmpty, method.allSatisfy({ $0.isASCII && ($0.isUppercase || $0 == "-") }) else {
            throw Refusal(status: 400, message: "malformed method")
        }
        guard uri.hasPrefix("/"), uri.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            throw Refusal(status: 400, message: "the request target must be a path")
        }
        guard version.hasPrefix("HTTP/") else { throw Refusal(status: 400, message: "malformed request line") }
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
            throw Refusal(status: 505, message: "only HTTP/1.0 and HTTP/1.1 are supported")
        }
        var headers: [(name: String, value: String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else {
                throw Refusal(status: 400, message: "malformed header line")
            }
            let name = String(line[..<colon])
            guard name.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else { throw Refusal(status: 400, message: "malformed header name") }
            headers.append((name, line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        func values(_ name: String) -> [String] {
            headers.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }.map(\.value)
        }
        if !values("Transfer-Encoding").isEmpty {
            throw Refusal(status: 501, message: "chunked request bodies are not supported; send Content-Length")
        }
        let lengths = Set(values("Content-Length"))
        guard lengths.count <= 1 else { throw Refusal(status: 400, message: "conflicting Content-Length headers") }
        var contentLength = 0
        if let text = lengths.first {
            guard !text.isEmpty, text.count <= 18, text.allSatisfy(\.isASCII), let n = Int(text), n >= 0 else {
                throw Refusal(status: 400, message: "Content-Length must be a non-negative integer")
            }
            contentLength = n
        }
        let connection = values("Connection").joined(separator: ",").lowercased()
        let http10 = version == "HTTP/1.0"
        return HTTPHead(
            method: method, uri: uri, http10: http10, headers: headers, contentLength: contentLength,
            keepAlive: http10 ? connection.contains("keep-alive") : !connection.contains("close"),
            expectsContinue: values("Expect").contains { $0.lowercased() == "100-continue" })
    }
}
