import Foundation

/// The supported pre-tokenizers: `Split` with a regex (behaviour `Isolated`), `ByteLevel`
/// (optionally with GPT-2's pattern), `Digits`, and `Sequence` of these.
struct PreTokenizer: Sendable {
    private enum Step: Sendable {
        case isolate(Pattern)
        case digits(individual: Bool)
    }

    private let steps: [Step]
    private let addPrefixSpace: Bool

    init(_ json: [String: Any]?) throws {
        var steps: [Step] = []
        var prefix = false
        func add(_ node: [String: Any]) throws {
            let type = node["type"] as? String ?? "?"
            switch type {
            case "Sequence":
                for child in node["pretokenizers"] as? [[String: Any]] ?? [] { try add(child) }
            case "Split":
                guard let patternNode = node["pattern"] as? [String: Any] else {
                    throw TokenizerError("pre_tokenizer Split has no pattern")
                }
                let behavior = node["behavior"] as? String ?? "Isolated"
                guard behavior == "Isolated", !(node["invert"] as? Bool ?? false) else {
                    throw TokenizerError("pre_tokenizer Split behavior '\(behavior)' (or invert) is not supported")
                }
                if let regex = patternNode["Regex"] as? String {
                    steps.append(.isolate(try Pattern(regex)))
                } else if let literal = patternNode["String"] as? String {
                    steps.append(.isolate(try Pattern(NSRegularExpression.escapedPattern(for: literal))))
                } else {
                    throw TokenizerError("pre_tokenizer Split pattern must be Regex or String")
                }
            case "ByteLevel":
                prefix = node["add_prefix_space"] as? Bool ?? false
                if node["use_regex"] as? Bool ?? true { steps.append(.isolate(try Pattern(ByteLevel.gpt2Pattern))) }
            case "Digits":
                steps.append(.digits(individual: node["individual_digits"] as? Bool ?? false))
            default:
                throw TokenizerError("pre_tokenizer '\(type)' is not supported")
            }
        }
        if let json { try add(json) }
        self.steps = steps
        addPrefixSpace = prefix
    }

    /// Pieces of `text` in order; concatenated they give `text` back (plus a prefix space if configured).
    func split(_ text: String) -> [String] {
        var pieces = [addPrefixSpace && !text.hasPrefix(" ") ? " " + text : text]
        for step in steps {
            pieces = pieces.flatMap { piece -> [String] in
                switch step {
                case .isolate(let pattern): return pattern.isolate(piece)
                case .digits(let individual): return Self.splitDigits(piece, individual: individual)
                }
            }
        }
        return pieces
    }

    private static func splitDigits(_ text: String, individual: Bool) -> [String] {
        var out: [String] = []
        var current = ""
        var currentIsDigit = false
        for c in text {
            let isDigit = c.isNumber
            if !current.isEmpty && (isDigit != currentIsDigit || (isDigit && individual)) {
                out.append(current)
                current = ""
            }
            current.append(c)
            currentIsDigit = isDigit
        }
        if !current.isEmpty { out.append(current) }
        return out
    }
}

/// A compiled regular expression; `NSRegularExpression` is immutable and documented thread-safe.
struct Pattern: @unchecked Sendable {
    let regex: NSRegularExpression

    init(_ pattern: String) throws {
        do {
            regex = try NSRegularExpression(pattern: pattern)
        } catch {
            throw TokenizerError("pre_tokenizer pattern does not compile: \(pattern)")
        }
    }

    /// Matches become pieces, and so do the gaps between them.
    func isolate(_ text: String) -> [String] {
        let ns = text as NSString
        var out: [String] = []
        var last = 0
        for match in regex.matches(in: text, range: NSRange(location: 0, length: ns.length)) where match.range.length > 0 {
            if match.range.location > last { out.append(ns.substring(with: NSRange(location: last, length: match.range.location - last))) }
            out.append(ns.substring(with: match.range))
            last = match.range.location + match.range.length
        }
        if last < ns.length { out.append(ns.substring(from: last)) }
        return out
    }
}
