/// A policy as a client names it: `threshold`, `learn2pd+eotp`, ... The one parser of policy
/// names and the `+eotp` suffix, for the command line, the HTTP API, nng requests and eval grids.
public struct PolicySpec: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var eotp: Bool

    public init(name: String, eotp: Bool) {
        self.name = name
        self.eotp = eotp
    }

    /// Parses `NAME` or `NAME+eotp`; throws for a name no policy has.
    public init(parsing text: String) throws {
        let eotp = text.hasSuffix("+eotp")
        let name = eotp ? String(text.dropLast(5)) : text
        guard PolicyFactory.names.contains(name) || name == "low-confidence" else {
            throw GenerationError.unknownPolicy(String(text.prefix(64)))
        }
        self.init(name: name == "low-confidence" ? "baseline" : name, eotp: eotp)
    }

    public var label: String { eotp ? "\(name)+eotp" : name }
    public var description: String { label }
    public static let baseline = PolicySpec(name: "baseline", eotp: false)
}
