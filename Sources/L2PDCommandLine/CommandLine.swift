import Foundation

/// One option of a command, declared once: parsing and `--help` both read this.
public struct OptionSpec: Sendable {
    public let name: String
    /// Placeholder for the value (`N`, `DIR`); nil for a flag that takes no value.
    public let value: String?
    public let help: String
    /// Shown in help; applied when the option is absent (unless `shownOnly`).
    public let defaultValue: String?
    /// The default is owned elsewhere (e.g. `DecodingParameters`) and only shown in help: an
    /// absent option stays absent.
    public var shownOnly = false

    public static func flag(_ name: String, _ help: String) -> OptionSpec {
        OptionSpec(name: name, value: nil, help: help, defaultValue: nil)
    }

    public static func option(_ name: String, _ value: String, _ help: String, default defaultValue: String? = nil) -> OptionSpec {
        OptionSpec(name: name, value: value, help: help, defaultValue: defaultValue)
    }

    /// An option whose default lives in the library that reads it; `shown` is for help only.
    public static func option(_ name: String, _ value: String, _ help: String, shown: String) -> OptionSpec {
        var spec = OptionSpec(name: name, value: value, help: help, defaultValue: shown)
        spec.shownOnly = true
        return spec
    }
}

/// A mistake in how the command was called; printed with a hint and exit code 1.
public struct UsageError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ message: String) { description = message }
}

/// The parsed command line of one command.
public struct ParsedOptions: Sendable {
    private(set) var values: [String: String] = [:]
    private(set) var flags: Set<String> = []
    public private(set) var arguments: [String] = []

    public func has(_ flag: String) -> Bool { flags.contains(flag) }

    public func string(_ name: String) -> String? { values[name] }

    public func int(_ name: String) throws -> Int? {
        guard let text = values[name] else { return nil }
        guard let value = Int(text) else { throw UsageError("--\(name) expects an integer, got '\(text.prefix(40))'") }
        return value
    }

    public func positiveInt(_ name: String) throws -> Int? {
        guard let value = try int(name) else { return nil }
        guard value > 0 else { throw UsageError("--\(name) must be positive, got \(value)") }
        return value
    }

    public func nonNegativeInt(_ name: String) throws -> Int? {
        guard let value = try int(name) else { return nil }
        guard value >= 0 else { throw UsageError("--\(name) must be at least 0, got \(value)") }
        return value
    }

    public func double(_ name: String) throws -> Double? {
        guard let text = values[name] else { return nil }
        guard let value = Double(text), value.isFinite else { throw UsageError("--\(name) expects a number, got '\(text.prefix(40))'") }
        return value
    }

    public func list(_ name: String) -> [String] {
        (values[name] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    public static func parse(_ arguments: [String], options: [OptionSpec]) throws -> ParsedOptions {
        var parsed = ParsedOptions()
        let byName = Dictionary(uniqueKeysWithValues: options.map { ($0.name, $0) })
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            i += 1
            if argument == "--" {
                parsed.arguments.append(contentsOf: arguments[i...])
                break
            }
            guard argument.hasPrefix("--"), argument.count > 2 else {
                parsed.arguments.append(argument)
                continue
            }
            var name = String(argument.dropFirst(2))
            var inlineValue: String? = nil
            if let equals = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            guard let spec = byName[name] else { throw UsageError("unknown option --\(name)") }
            if spec.value == nil {
                guard inlineValue == nil else { throw UsageError("--\(name) takes no value") }
                parsed.flags.insert(name)
            } else if let value = inlineValue {
                parsed.values[name] = value
            } else {
                guard i < arguments.count else { throw UsageError("--\(name) needs a value (\(spec.value!))") }
                parsed.values[name] = arguments[i]
                i += 1
            }
        }
        for spec in options where spec.value != nil && !spec.shownOnly && parsed.values[spec.name] == nil {
            if let fallback = spec.defaultValue { parsed.values[spec.name] = fallback }
        }
        return parsed
    }
}

/// A subcommand of `l2pd`: its name, what it does, its options, and how it runs.
public protocol Command: Sendable {
    /// Words after `l2pd` that select the command, e.g. `["bench", "forward"]`.
    static var path: [String] { get }
    static var summary: String { get }
    static var usage: String { get }
    static var options: [OptionSpec] { get }
    static func run(_ options: ParsedOptions) async throws
}

extension Command {
    public static var usage: String { "l2pd \(path.joined(separator: " ")) [options]" }

    public static var help: String {
        var lines = ["\(summary)", "", "Usage: \(usage)", "", "Options:"]
        let width = (options.map { optionLabel($0).count } + [10]).max()! + 2
        for spec in options + [.flag("help", "Show this help.")] {
            var line = "  " + optionLabel(spec).padding(toLength: width, withPad: " ", startingAt: 0) + spec.help
            if let fallback = spec.defaultValue { line += " (default: \(fallback))" }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    private static func optionLabel(_ spec: OptionSpec) -> String {
        spec.value.map { "--\(spec.name) \($0)" } ?? "--\(spec.name)"
    }
}

/// Writes a line to standard error.
public func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
