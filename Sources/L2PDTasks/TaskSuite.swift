import Foundation

/// The kinds of problem the suite generates. Every answer is checked by a program, and two
/// mechanisms make committing many answer tokens in one step cost accuracy:
/// - **chains** (`sort`, `runmax`): later answer tokens depend on earlier written ones;
/// - **choices** (`pairsum`, `evens`): several answers are right, and an answer's tokens must
///   agree with each other, so a model's marginals there are split between answers.
/// `addition` and `copy` keep short, single-answer problems in the suite.
public enum TaskFamily: String, CaseIterable, Sendable, Codable {
    /// Add two numbers of one to three digits; the answer restates the sum.
    case addition
    /// Copy a digit string of 3 to 12 digits.
    case copy
    /// Sort 3 to 7 distinct numbers below 100 in ascending order.
    case sort
    /// The running maximum of 3 to 7 numbers below 100, each input written beside the maximum so far.
    case runmax
    /// Name two numbers of a list of six that add up to 100; two or three pairs qualify, in either order.
    case pairsum
    /// Write the even numbers of 5 to 8 distinct two-digit numbers (2 to 4 of them) in any order.
    case evens

    /// What a prompt of this family asks, in a few words.
    public var summary: String {
        switch self {
        case .addition: "add two numbers of 1 to 3 digits"
        case .copy: "copy a string of 3 to 12 digits"
        case .sort: "sort 3 to 7 distinct numbers below 100"
        case .runmax: "write the running maximum of 3 to 7 numbers below 100 (a chain)"
        case .pairsum: "name two of six numbers that add up to 100 (2 or 3 pairs qualify: a choice)"
        case .evens: "write the 2 to 4 even numbers of 5 to 8 two-digit numbers in any order (a choice)"
        }
    }

    /// Whether later answer tokens depend on earlier ones, several answers are right, or neither.
    public var mechanism: TaskMechanism {
        switch self {
        case .addition, .copy: .short
        case .sort, .runmax: .chain
        case .pairsum, .evens: .choice
        }
    }
}

/// Why committing many tokens of a family's answer at once can cost accuracy.
public enum TaskMechanism: String, Sendable {
    /// Short, single-answer problems.
    case short
    /// Later tokens depend on earlier written ones.
    case chain
    /// More than one answer is right; the tokens of one answer must agree.
    case choice
}

/// Train and evaluation splits never share a prompt: a prompt's hash decides which split may hold it.
public enum TaskSplit: String, CaseIterable, Sendable, Codable {
    case train
    case eval
}

/// One problem: the user prompt, one full answer a model is trained to write (for choice
/// families one valid answer drawn uniformly), and that answer's checked part.
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

/// SplitMix64: small, seedable, identical on every platform. Draws go through `uniform` and
/// `shuffle` below (never the standard library's `random(in:using:)`, whose algorithm may change
/// between Swift releases), so a seed names the same suite everywhere and forever.
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

    /// A draw from `range` by multiply-shift: the high word of a 64x64-bit product.
    public mutating func uniform(_ range: ClosedRange<Int>) -> Int {
        let span = UInt64(range.upperBound - range.lowerBound) + 1
        return range.lowerBound + Int(next().multipliedFullWidth(by: span).high)
    }

    /// Fisher-Yates with `uniform`.
    public mutating func shuffle<T>(_ values: inout [T]) {
        guard values.count > 1 else { return }
        for i in stride(from: values.count - 1, to: 0, by: -1) { values.swapAt(i, uniform(0...i)) }
    }
}

public enum TaskSuite {
    /// One prompt in `evalShare` goes to the evaluation split, the rest to training.
    static let evalShare: UInt64 = 8
    /// The sum `pairsum` asks for.
    public static let pairTarget = 100

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
            let a = randomNumber(digits: rng.uniform(1...3), using: &rng)
            let b = randomNumber(digits: rng.uniform(1...3), using: &rng)
            let sum = String(a + b)
            return TaskExample(family: family, prompt: "What is \(a) + \(b)?", answer: "\(a) + \(b) = \(sum)", expected: sum)
        case .copy:
            let digits = String((0..<rng.uniform(3...12)).map { _ in Character(String(rng.uniform(0...9))) })
            return TaskExample(family: family, prompt: "Copy the digits \(digits).", answer: digits, expected: digits)
        case .sort:
            let numbers = distinct(rng.uniform(3...7), from: 0...99, using: &rng)
            let answer = spaced(numbers.sorted())
            return TaskExample(family: family, prompt: "Sort \(spaced(numbers)) in ascending order.", answer: answer, expected: answer)
        case .runmax:
            let numbers = (0..<rng.uniform(3...7)).map { _ in rng.uniform(0...99) }
            let answer = runningMaximum(numbers)
            return TaskExample(
                family: family, prompt: "Write the running maximum of \(spaced(numbers)).", answer: answer, expected: answer)
        case .pairsum:
            let numbers = pairsumNumbers(pairs: rng.uniform(2...3), using: &rng)
            let pairs = validPairs(numbers)
            let (a, b) = pairs[rng.uniform(0...(pairs.count - 1))]
            let answer = "\(a) + \(b) = \(pairTarget)"
            return TaskExample(
                family: family, prompt: "Which two numbers in \(spaced(numbers)) add up to \(pairTarget)?", answer: answer,
                expected: answer)
        case .evens:
            let total = rng.uniform(5...8)
            let evenCount = rng.uniform(2...min(4, total - 1))
            var evens = distinct(evenCount, from: 5...49, using: &rng).map { $0 * 2 }
            var numbers = evens + distinct(total - evenCount, from: 5...49, using: &rng).map { $0 * 2 + 1 }
            rng.shuffle(&numbers)
            rng.shuffle(&evens)
            let answer = spaced(evens)
            return TaskExample(
                family: family, prompt: "Write the even numbers of \(spaced(numbers)) in any order.", answer: answer,
                expected: answer)
        }
    }

    /// Whether `output` answers `example`: any valid answer counts for the choice families.
    public static func isCorrect(_ example: TaskExample, output: String) -> Bool {
        let answer = extractAnswer(family: example.family, from: output)
        switch example.family {
        case .addition, .copy, .sort, .runmax:
            return answer == example.expected
        case .pairsum:
            let numbers = promptNumbers(example.prompt, between: " in ", and: " add up")
            let parts = answer.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 5, parts[1] == "+", parts[3] == "=", parts[4] == "\(pairTarget)",
                let a = canonicalNumber(parts[0]), let b = canonicalNumber(parts[2]), a + b == pairTarget
            else { return false }
            var remaining = numbers
            guard let i = remaining.firstIndex(of: a) else { return false }
            remaining.remove(at: i)
            return remaining.contains(b)
        case .evens:
            let numbers = promptNumbers(example.prompt, between: " of ", and: " in any")
            let parts = answer.split(separator: " ", omittingEmptySubsequences: false).map(canonicalNumber)
            guard parts.allSatisfy({ $0 != nil }) else { return false }
            return parts.map { $0! }.sorted() == numbers.filter { $0 % 2 == 0 }.sorted()
        }
    }

    /// The part of a model's output the checker reads.
    public static func extractAnswer(family: TaskFamily, from output: String) -> String {
        let text = output.trimmingCharacters(in: .whitespacesAndNewlines)
        switch family {
        case .addition:
            guard let equals = text.lastIndex(of: "=") else { return lastNumber(in: text) }
            return text[text.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        case .copy, .sort, .runmax, .pairsum, .evens:
            return text
        }
    }

    /// One JSONL line: `{"family", "prompt", "answer", "expected"}` with sorted keys.
    public static func jsonLine(_ example: TaskExample) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(example), as: UTF8.self)
    }

    /// "a:m1 b:m2 ...": each input beside the largest input so far.
    static func runningMaximum(_ numbers: [Int]) -> String {
        var best = Int.min
        return numbers.map { n in
            best = max(best, n)
            return "\(n):\(best)"
        }.joined(separator: " ")
    }

    /// Six numbers from 1...99 holding exactly `pairs` disjoint pairs that add up to the target
    /// and no other: the rest pair with nothing, and 50 appears at most once.
    static func pairsumNumbers(pairs: Int, using rng: inout SplitMix64) -> [Int] {
        // Each complementary class {x, 100 - x} (x in 1...49), or {50}, is used once at most.
        var classes = distinct(pairs, from: 1...49, using: &rng)
        var numbers = classes.flatMap { [$0, pairTarget - $0] }
        while numbers.count < 6 {
            let x = rng.uniform(1...50)
            guard !classes.contains(x) else { continue }
            classes.append(x)
            numbers.append(x == 50 || rng.uniform(0...1) == 0 ? x : pairTarget - x)
        }
        rng.shuffle(&numbers)
        return numbers
    }

    /// Every ordered pair of list entries (at different positions) that adds up to the target.
    static func validPairs(_ numbers: [Int]) -> [(Int, Int)] {
        var pairs: [(Int, Int)] = []
        for i in numbers.indices {
            for j in numbers.indices where i != j && numbers[i] + numbers[j] == pairTarget {
                pairs.append((numbers[i], numbers[j]))
            }
        }
        return pairs
    }

    static func distinct(_ count: Int, from range: ClosedRange<Int>, using rng: inout SplitMix64) -> [Int] {
        var chosen: [Int] = []
        while chosen.count < count {
            let x = rng.uniform(range)
            if !chosen.contains(x) { chosen.append(x) }
        }
        return chosen
    }

    static func spaced(_ numbers: [Int]) -> String { numbers.map(String.init).joined(separator: " ") }

    /// The numbers of a prompt between two markers, e.g. the list of "Which two numbers in ... add up".
    static func promptNumbers(_ prompt: String, between start: String, and end: String) -> [Int] {
        guard let from = prompt.range(of: start), let to = prompt.range(of: end, range: from.upperBound..<prompt.endIndex)
        else { return [] }
        return prompt[from.upperBound..<to.lowerBound].split(separator: " ").compactMap { Int($0) }
    }

    /// A number written the way the suite writes numbers: ASCII digits, no sign, no leading zero.
    static func canonicalNumber(_ word: Substring) -> Int? {
        guard !word.isEmpty, word.count <= 3, word.allSatisfy({ $0.isASCII && $0.isNumber }),
            word == "0" || word.first != "0"
        else { return nil }
        return Int(word)
    }

    static func randomNumber(digits: Int, using rng: inout SplitMix64) -> Int {
        digits == 1 ? rng.uniform(0...9) : rng.uniform(pow10(digits - 1)...(pow10(digits) - 1))
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
