import Foundation

/// The kinds of problem the suite generates. Every answer can be checked by a program.
public enum TaskFamily: String, CaseIterable, Sendable, Codable {
    /// Add two numbers of one to three digits; the answer restates the sum.
    case addition
    /// Copy a digit string of 3 to 12 digits.
    case copy
    /// Count how often a digit occurs in a digit string.
    case count
    /// Write the whole numbers from A to B (3 to 50 of them, up to about 200 tokens).
    case sequence
    /// Write the multiples of K (2 to 9) from K to n K (3 to 25 of them).
    case multiples

    /// What a prompt of this family asks, in a few words.
    public var summary: String {
        switch self {
        case .addition: "add two numbers of 1 to 3 digits"
        case .copy: "copy a string of 3 to 12 digits"
        case .count: "count how often a digit occurs in a digit string"
        case .sequence: "write the whole numbers from A to B (3 to 50 of them)"
        case .multiples: "write the multiples of K (2 to 9) from K to nK (3 to 25 of them)"
        }
    }
}

/// Train and evaluation splits never share a prompt: a prompt's hash decides which split may hold it.
public enum TaskSplit: String, CaseIterable, Sendable, Codable {
    case train
    case eval
}

/// One problem: the user prompt, the full answer a model is trained to write, and the
/// short ground truth the checker compares against.
public struct TaskExample: Sendable, Codable, Equatable {
    public var family: TaskFamily
    public var prompt: String
    public var answer: String
    public var expected: String

    public init(family: TaskFamily, prompt: String, answer: String, expected: String) {
        self.family = family
        self.prompt = prompt
        self.answer = answer
        self.expected = expected
    }
}

/// SplitMix64: small, seedable, identical on every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

public enum TaskSuite {
    /// One prompt in `evalShare` goes to the evaluation split, the rest to training.
    static let evalShare: UInt64 = 8

    /// `count` examples of `split`, cycling through `families` in order, reproducible from `seed`.
    public static func examples(
        split: TaskSplit, count: Int, seed: UInt64, families: [TaskFamily] = TaskFamily.allCases
    ) -> [TaskExample] {
        precondition(!families.isEmpty, "at least one task family")
        var rng = SplitMix64(seed: seed ^ (split == .train ? 0x7472_6169_6E00 : 0x6576_616C_0000))
        var out: [TaskExample] = []
        out.reserveCapacity(count)
        while out.count < count {
            let family = families[out.count % families.count]
            let example = generate(family, using: &rng)
            if TaskSuite.split(of: example.prompt) == split { out.append(example) }
        }
        return out
    }

    /// The split a prompt belongs to (FNV-1a hash of its UTF-8 bytes).
    public static func split(of prompt: String) -> TaskSplit {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in prompt.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        return hash % evalShare == 0 ? .eval : .train
    }

    public static func generate(_ family: TaskFamily, using rng: inout SplitMix64) -> TaskExample {
        switch family {
        case .addition:
            let a = randomNumber(digits: Int.random(in: 1...3, using: &rng), using: &rng)
            let b = randomNumber(digits: Int.random(in: 1...3, using: &rng), using: &rng)
            let sum = String(a + b)
            return TaskExample(family: family, prompt: "What is \(a) + \(b)?", answer: "\(a) + \(b) = \(sum)", expected: sum)
        case .copy:
            let digits = randomDigits(Int.random(in: 3...12, using: &rng), using: &rng)
            return TaskExample(family: family, prompt: "Copy the digits \(digits).", answer: digits, expected: digits)
        case .sequence:
            let start = Int.random(in: 0...300, using: &rng)
            let end = start + Int.random(in: 2...49, using: &rng)
            let answer = (start...end).map(String.init).joined(separator: " ")
            return TaskExample(family: family, prompt: "Count from \(start) to \(end).", answer: answer, expected: answer)
        case .multiples:
            let k = Int.random(in: 2...9, using: &rng)
            let n = Int.random(in: 3...25, using: &rng)
            let answer = (1...n).map { String($0 * k) }.joined(separator: " ")
            return TaskExample(
                family: family, prompt: "List the multiples of \(k) from \(k) to \(n * k).", answer: answer, expected: answer)
        case .count:
            let digits = randomDigits(Int.random(in: 5...40, using: &rng), using: &rng)
            let target = digits.randomElement(using: &rng)!
            let n = String(digits.filter { $0 == target }.count)
            return TaskExample(
                family: family, prompt: "How many times does \(target) occur in \(digits)?",
                answer: "\(target) occurs \(n) times", expected: n)
        }
    }

    /// The part of a model's output the checker compares with `expected`.
    public static func extractAnswer(family: TaskFamily, from output: String) -> String {
        let text = output.trimmingCharacters(in: .whitespacesAndNewlines)
        switch family {
        case .addition:
            guard let equals = text.lastIndex(of: "=") else { return lastNumber(in: text) }
            return text[text.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        case .count:
            let words = text.split(separator: " ")
            if words.count >= 2, words[words.count - 1] == "times" { return String(words[words.count - 2]) }
            return lastNumber(in: text)
        case .copy, .sequence, .multiples:
            return text
        }
    }

    public static func isCorrect(_ example: TaskExample, output: String) -> Bool {
        extractAnswer(family: example.family, from: output) == example.expected
    }

    /// One JSONL line: `{"family", "prompt", "answer", "expected"}` with sorted keys.
    public static func jsonLine(_ example: TaskExample) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(example), as: UTF8.self)
    }

    static func randomDigits(_ n: Int, using rng: inout SplitMix64) -> String {
        String((0..<n).map { _ in Character(String(Int.random(in: 0...9, using: &rng))) })
    }

    static func randomNumber(digits: Int, using rng: inout SplitMix64) -> Int {
        digits == 1 ? Int.random(in: 0...9, using: &rng) : Int.random(in: pow10(digits - 1)..<pow10(digits), using: &rng)
    }

    static func pow10(_ n: Int) -> Int { (0..<n).reduce(1) { r, _ in r * 10 } }

    static func lastNumber(in text: String) -> String {
        var current = ""
        var last = ""
        for c in text {
            if c.isASCII && c.isNumber {
                current.append(c)
            } else if !current.isEmpty {
                last = current
                current = ""
            }
        }
        return current.isEmpty ? last : current
    }
}
