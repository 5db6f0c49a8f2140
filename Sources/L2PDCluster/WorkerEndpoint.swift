import Foundation

/// One worker as the coordinator sees it: the address it serves its coordinator at, the
/// address the stages before it send chained passes to, and its layers.
public struct WorkerEndpoint: Sendable, Equatable, Codable {
    public var url: String
    public var layers: Range<Int>
    /// Where the stages before this one reach it in chained passes (nil: nowhere, so passes
    /// through it are relayed).
    public var stageURL: String?

    public init(url: String, layers: Range<Int>, stageURL: String? = nil) {
        self.url = url
        self.layers = layers
        self.stageURL = stageURL ?? StageAddress.derived(from: url)
    }
}

/// The address a worker listens at for the stages before it, unless told otherwise: its own
/// address with the port 100 higher (100 lower above port 65435) for `tcp://` and `tls+tcp://`,
/// with `.stages` appended for `ipc://` and `inproc://`. Its coordinator and the earlier stages
/// use separate sockets, so a worker's answers to its coordinator always wait for room instead
/// of being dropped (nng's many-peer pair sockets drop sends to a busy peer).
public enum StageAddress {
    public static func derived(from url: String) -> String? {
        for scheme in ["tcp://", "tls+tcp://"] where url.hasPrefix(scheme) {
            let rest = url.dropFirst(scheme.count)
            guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port)
            else { return nil }
            let stagePort = port <= 65435 ? port + 100 : port - 100
            return scheme + rest[..<colon] + ":\(stagePort)"
        }
        for scheme in ["ipc://", "inproc://"] where url.hasPrefix(scheme) && url.count > scheme.count {
            return url + ".stages"
        }
        return nil
    }
}
