import CNNG
import CTLSCheck
import Foundation

/// Where a node's TLS material lives (PEM files): its own certificate and key, and the CA
/// certificates it trusts to sign its peers'. As the cluster file's `tls` object and the
/// worker's `--tls-*` flags give them.
public struct TLSFiles: Sendable, Equatable, Decodable {
    /// CA certificates that sign the peer's certificate.
    public var ca: String?
    /// This node's certificate (a chain may follow it in the same file).
    public var certificate: String?
    /// This node's private key, unencrypted.
    public var key: String?

    public init(ca: String? = nil, certificate: String? = nil, key: String? = nil) {
        self.ca = ca
        self.certificate = certificate
        self.key = key
    }
}

/// TLS for one side of a `tls+tcp://` link, read and checked once: a server (a worker) always
/// presents its certificate and, with a CA, requires one from its clients (mutual TLS); a
/// client (the coordinator) always verifies the server against its CA and presents its own
/// certificate when it has one.
public struct TLSConfiguration: Sendable {
    public enum Role: Sendable { case client, server }
    public let role: Role
    public let files: TLSFiles
    let caPEM: String?
    let certificatePEM: String?
    let keyPEM: String?

    /// Reads and checks the files: each must exist and parse, the key must match the
    /// certificate, the certificate must be valid now; a client needs a CA, a server a
    /// certificate and key. Errors are one line naming the file and the problem.
    public init(_ files: TLSFiles, role: Role) throws {
        self.role = role
        self.files = files
        func read(_ path: String?, _ what: String) throws -> String? {
            guard let path else { return nil }
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                throw TransportError.tls("cannot read the \(what) file \(path)")
            }
            return text
        }
        caPEM = try read(files.ca, "CA")
        certificatePEM = try read(files.certificate, "certificate")
        keyPEM = try read(files.key, "key")
        guard (certificatePEM == nil) == (keyPEM == nil) else {
            throw TransportError.tls("give both a certificate and its key, or neither")
        }
        switch role {
        case .server where certificatePEM == nil:
            throw TransportError.tls("a TLS listener needs a certificate and key")
        case .client where caPEM == nil:
            throw TransportError.tls("a TLS client needs the CA that signed its peers' certificates")
        default: break
        }
        var reason = [CChar](repeating: 0, count: 256)
        if let caPEM, l2pd_tls_check_ca(caPEM, &reason, reason.count) <= 0 {
            throw TransportError.tls("CA file \(files.ca!): \(text(reason))")
        }
        if let certificatePEM, let keyPEM {
            var flags: UInt32 = 0
            var notAfter = [CChar](repeating: 0, count: 32)
            if l2pd_tls_check_identity(certificatePEM, keyPEM, &flags, &notAfter, notAfter.count, &reason, reason.count) != 0 {
                let expiry = flags & UInt32(L2PD_TLS_EXPIRED) != 0 ? " on \(text(notAfter)) UTC" : ""
                throw TransportError.tls("certificate \(files.certificate!) with key \(files.key!): \(text(reason))\(expiry)")
            }
        }
    }

    /// A `tls+tcp://` URL comes with TLS settings of the right role, and only such a URL.
    static func checkPairing(url: String, tls: TLSConfiguration?, role: Role) throws {
        if isTLS(url) && tls == nil {
            throw TransportError.tls(
                role == .server
                    ? "a tls+tcp:// listener needs --tls-cert and --tls-key" : "a tls+tcp:// link needs a CA (\"tls\": {\"ca\": ...})",
                url: url)
        }
        if !isTLS(url), tls != nil { throw TransportError.tls("TLS settings are given, but the URL is not tls+tcp://", url: url) }
        if let tls, tls.role != role { throw TransportError.tls("TLS settings for the wrong side of the link", url: url) }
    }

    /// Whether `url` uses the TLS transport.
    public static func isTLS(_ url: String) -> Bool { url.hasPrefix("tls+tcp://") }

    /// A fresh nng TLS configuration for this side; `host` names the server a client expects
    /// (DNS names are checked against the certificate; an IP address is not, see the README).
    func nngConfiguration(host: String?) throws -> OpaquePointer {
        var config: OpaquePointer? = nil
        let mode = role == .server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT
        try check(nng_tls_config_alloc(&config, mode), url: "", "TLS configuration")
        guard let config else { throw TransportError.tls("no TLS configuration") }
        do {
            if let caPEM {
                try check(nng_tls_config_ca_chain(config, caPEM, nil), url: "", "TLS CA")
                try check(nng_tls_config_auth_mode(config, NNG_TLS_AUTH_MODE_REQUIRED), url: "", "TLS auth mode")
            } else {
                try check(nng_tls_config_auth_mode(config, NNG_TLS_AUTH_MODE_NONE), url: "", "TLS auth mode")
            }
            if let certificatePEM, let keyPEM {
                try check(nng_tls_config_own_cert(config, certificatePEM, keyPEM, nil), url: "", "TLS certificate")
            }
            if role == .client, let host, !TLSConfiguration.isAddress(host) {
                try check(nng_tls_config_server_name(config, host), url: "", "TLS server name")
            }
        } catch {
            nng_tls_config_free(config)
            throw error
        }
        return config
    }

    static func isAddress(_ host: String) -> Bool {
        host.allSatisfy { $0.isNumber || $0 == "." } || host.contains(":")
    }

    /// Host and port of a `tcp://` or `tls+tcp://` URL (`[v6]:port` allowed).
    public static func hostAndPort(_ url: String) -> (host: String, port: String)? {
        guard let range = url.range(of: "://") else { return nil }
        let rest = url[range.upperBound...]
        guard let colon = rest.lastIndex(of: ":") else { return nil }
        var host = String(rest[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = String(rest[rest.index(after: colon)...])
        guard !host.isEmpty, !port.isEmpty, port.allSatisfy(\.isNumber) else { return nil }
        return (host, port)
    }

    /// Why a link to the listener at `url` would fail, found by a handshake of our own, in one
    /// line; nil when it works or the peer cannot be reached now (nng keeps dialing). For a
    /// `tls+tcp://` URL it names a wrong CA, an expired certificate, a name the certificate
    /// lacks, a refused client certificate or a plaintext peer; for a `tcp://` URL, a peer that
    /// speaks TLS. Blocks for up to `timeout` seconds: call it off the cooperative pool.
    public static func diagnose(url: String, tls: TLSConfiguration?, timeout: Double = 5) -> String? {
        guard url.hasPrefix("tcp://") || isTLS(url), let (host, port) = hostAndPort(url) else { return nil }
        let connectHost = host == "*" ? "127.0.0.1" : host
        var flags: UInt32 = 0
        var reason = [CChar](repeating: 0, count: 256)
        let name = isAddress(host) ? nil : host
        let ms = UInt32(max(100, min(timeout, 60)) * 1000)
        let outcome = withOptionalCString(tls?.caPEM) { ca in
            withOptionalCString(tls?.certificatePEM) { certificate in
                withOptionalCString(tls?.keyPEM) { key in
                    withOptionalCString(name) { name in
                        l2pd_tls_probe(connectHost, port, name, ca, certificate, key, ms, &flags, &reason, reason.count)
                    }
                }
            }
        }
        let detail = text(reason)
        if !isTLS(url) {
            // A plaintext link: only a peer that completes our TLS hello is a problem (a plaintext
            // nng peer answers it with its own header, which is not TLS).
            let spokeTLS = Int(outcome) == Int(L2PD_PROBE_OK) || Int(outcome) == Int(L2PD_PROBE_BAD_PEER_CERT)
            return spokeTLS ? "\(url) answers with TLS: use tls+tcp:// and give the CA in the cluster file's \"tls\"" : nil
        }
        switch Int(outcome) {
        case Int(L2PD_PROBE_OK), Int(L2PD_PROBE_UNREACHABLE): return nil
        case Int(L2PD_PROBE_NOT_TLS):
            return "\(url) does not speak TLS (a plaintext listener?): use tcp://, or start the worker with --tls-cert and --tls-key"
        case Int(L2PD_PROBE_REFUSED):
            return tls?.certificatePEM == nil
                ? "\(url) refused the TLS handshake: it requires a client certificate (give \"certificate\" and \"key\" in \"tls\")"
                : "\(url) refused the TLS handshake: its CA (--tls-ca) did not sign our certificate \(tls?.files.certificate ?? "")"
        case Int(L2PD_PROBE_BAD_PEER_CERT):
            var problems: [String] = []
            if flags & UInt32(L2PD_TLS_NOT_TRUSTED) != 0 {
                problems.append("is not signed by the CA in \(tls?.files.ca ?? "the CA file")")
            }
            if flags & UInt32(L2PD_TLS_EXPIRED) != 0 { problems.append("has expired") }
            if flags & UInt32(L2PD_TLS_NOT_YET_VALID) != 0 { problems.append("is not valid yet") }
            if flags & UInt32(L2PD_TLS_NAME_MISMATCH) != 0 { problems.append("does not name \(host)") }
            if problems.isEmpty { problems.append("failed verification") }
            return "\(url): the worker's certificate " + problems.joined(separator: " and ")
        default:
            return "\(url): TLS check failed: \(detail)"
        }
    }
}

/// The text of a NUL-terminated C buffer.
private func text(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

private func withOptionalCString<R>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let text else { return body(nil) }
    return text.withCString { body($0) }
}
