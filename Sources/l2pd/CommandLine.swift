import Foundation

/// One option of a command, declared once: parsing and `--help` both read this.
struct OptionSpec {
    let name: String
    /// Placeholder for the value (`N`, `DIR`); nil for a flag that takes no value.
    let value: String?
    let help: String
    /// Shown in help; applied when the option is absent.
    let defaultValue: String?

    static func flag(_ name: String, _ help: String) -> OptionSpec {
        OptionSpec(name: name, value: nil, help: help, defaultValue: nil)
    }

    static func option(_ name: String, _ value: String, _ help: String, default defaultValue: String? = nil) -> OptionSpec {
        OptionSpec(name: name, value: value, help: help, defaultValue: defaultValue)
    }
}

/// A mistake in how the command was called; printed with a hint and exit code 1.
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// The parsed command line of one command.
struct ParsedOptions {
    private(set) var values: [String: String] = [:]
    private(set) var flags: Set<String> = []
    private(set) var arguments: [String] = []

    func has(_ flag: String) -> Bool { flags.contains(flag) }

    func string(_ name: String) -> String? { values[name] }

    func int(_ name: String) throws -> Int? {
        guard let text = values[name] else { return nil }
        guard let value = Int(text) else { throw UsageError("--\(name) expects an integer, got '\(text)'") }
        return value
    }

    func positiveInt(_ name: String) throws -> Int? {
        guard let value = try int(name) else { return nil }
        guard value > 0 else { throw UsageError("--\(name) must be positive, got \(value)") }
        return value
    }

    func nonNegativeInt(_ name: String) throws -> Int? {
        guard let value = try int(name) else { return nil }
        guard value >= 0 else { throw UsageError("--\(name) must be at least 0, got \(value)") }
        return value
    }

    func double(_ name: String) throws -> Double? {
        guard let text = values[name] else { return nil }
        guard let value = Double(text), value.isFinite else { throw UsageError("--\(name) expects a number, got '\(text)'") }
        return value
    }

    func list(_ name: String) -> [String] {
        (values[name] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    static func parse(_ arguments: [String], options: [OptionSpec]) throws -> ParsedOptions {
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
        for spec in options where spec.value != nil && parsed.values[spec.name] == nil {
            if let fallback = spec.defaultValue { parsed.values[spec.name] = fallback }
        }
        return parsed
    }
}

/// A subcommand of `l2pd`: its name, what it does, its options, and how it runs.
protocol Command: Sendable {
    /// Words after `l2pd` that select the command, e.g. `["bench", "forward"]`.
    static var path: [String] { get }
    static var summary: String { get }
    static var usage: String { get }
    static var options: [OptionSpec] { get }
    static func run(_ options: ParsedOptions) async throws
}

extension Command {
    static var usage: String { "l2pd \(path.joined(separator: " ")) [options]" }

    static var help: String {
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
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
