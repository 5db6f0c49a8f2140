import Foundation
import Testing

@testable import L2PDTasks

@Test func splitsAreDisjointAndReproducible() {
    let train = TaskSuite.examples(split: .train, count: 2000, seed: 1)
    let eval = TaskSuite.examples(split: .eval, count: 500, seed: 1)
    #expect(Set(train.map(\.prompt)).isDisjoint(with: Set(eval.map(\.prompt))))
    #expect(train.allSatisfy { TaskSuite.split(of: $0.prompt) == .train })
    #expect(eval.allSatisfy { TaskSuite.split(of: $0.prompt) == .eval })
    #expect(TaskSuite.examples(split: .eval, count: 50, seed: 1) == Array(eval.prefix(50)))
    #expect(TaskSuite.examples(split: .eval, count: 50, seed: 2) != Array(eval.prefix(50)))
}

@Test func everyFamilyAppearsAndAnswersCheckThemselves() {
    let examples = TaskSuite.examples(split: .train, count: 500, seed: 7)
    #expect(Set(examples.map(\.family)) == Set(TaskFamily.allCases))
    for example in examples {
        #expect(TaskSuite.isCorrect(example, output: example.answer), "\(example)")
        #expect(TaskSuite.isCorrect(example, output: "  \(example.answer)\n"))
    }
}

/// The numbers of a prompt, read by splitting on spaces (independent of the suite's parser).
private func numbers(in text: some StringProtocol) -> [Int] {
    text.split(whereSeparator: { !$0.isNumber }).map { Int($0)! }
}

@Test func answersAreVerifiedIndependently() {
    for example in TaskSuite.examples(split: .eval, count: 600, seed: 3) {
        let listed = numbers(in: example.prompt)
        let written = numbers(in: example.answer)
        switch example.family {
        case .addition:
            #expect(Int(example.expected) == listed[0] + listed[1])
        case .copy:
            #expect(example.prompt == "Copy the digits \(example.expected).")
        case .sort:
            #expect((3...7).contains(listed.count) && Set(listed).count == listed.count)
            #expect(written == listed.sorted())
        case .runmax:
            #expect((3...7).contains(listed.count))
            for i in listed.indices {
                #expect(written[2 * i] == listed[i])
                #expect(written[2 * i + 1] == listed[...i].max()!)
            }
        case .pairsum:
            let list = Array(listed.dropLast())
            #expect(list.count == 6 && listed.last == 100)
            let qualifying = list.indices.flatMap { i in list.indices.filter { j in j != i && list[i] + list[j] == 100 } }
            #expect(qualifying.count == 4 || qualifying.count == 6, "\(example.prompt)")
            #expect(written[0] + written[1] == 100 && written[2] == 100)
        case .evens:
            #expect((5...8).contains(listed.count) && Set(listed).count == listed.count)
            #expect(written.sorted() == listed.filter { $0 % 2 == 0 }.sorted())
            #expect((2...4).contains(written.count))
        }
    }
}

@Test func choiceFamiliesAcceptEveryValidAnswer() {
    let pairs = TaskExample(
        family: .pairsum, prompt: "Which two numbers in 16 17 66 34 84 83 add up to 100?", answer: "84 + 16 = 100",
        expected: "84 + 16 = 100")
    for valid in ["84 + 16 = 100", "16 + 84 = 100", "66 + 34 = 100", "34 + 66 = 100", "17 + 83 = 100", " 83 + 17 = 100\n"] {
        #expect(TaskSuite.isCorrect(pairs, output: valid), "\(valid)")
    }
    for wrong in ["84 + 17 = 100", "16 + 84", "50 + 50 = 100", "84 + 84 = 100", "084 + 16 = 100", "84 + 16 = 100 66", ""] {
        #expect(!TaskSuite.isCorrect(pairs, output: wrong), "\(wrong)")
    }
    let evens = TaskExample(
        family: .evens, prompt: "Write the even numbers of 21 64 17 98 18 in any order.", answer: "64 98 18",
        expected: "64 98 18")
    for valid in ["64 98 18", "18 64 98", "98 18 64"] { #expect(TaskSuite.isCorrect(evens, output: valid)) }
    for wrong in ["64 98", "64 98 18 18", "64 98 17", "64  98 18", "64 98 18.", "6498 18"] {
        #expect(!TaskSuite.isCorrect(evens, output: wrong), "\(wrong)")
    }
}

@Test func wrongOutputsAreRejected() {
    let add = TaskExample(family: .addition, prompt: "What is 12 + 30?", answer: "12 + 30 = 42", expected: "42")
    #expect(!TaskSuite.isCorrect(add, output: "12 + 30 = 43"))
    #expect(!TaskSuite.isCorrect(add, output: ""))
    #expect(TaskSuite.isCorrect(add, output: "42"))
    let copy = TaskExample(family: .copy, prompt: "Copy the digits 123.", answer: "123", expected: "123")
    #expect(!TaskSuite.isCorrect(copy, output: "1234"))
    let sort = TaskExample(family: .sort, prompt: "Sort 42 5 17 in ascending order.", answer: "5 17 42", expected: "5 17 42")
    #expect(!TaskSuite.isCorrect(sort, output: "5 42 17"))
    let runmax = TaskExample(
        family: .runmax, prompt: "Write the running maximum of 12 5 40.", answer: "12:12 5:12 40:40", expected: "12:12 5:12 40:40")
    #expect(!TaskSuite.isCorrect(runmax, output: "12:12 5:5 40:40"))
}

@Test func drawsAreUniformAndStable() {
    // The suite must not depend on the standard library's sampling algorithms: a seed's first
    // draws are pinned (from an independent Python SplitMix64 with multiply-shift: (z * 100) >> 64).
    var pinned = SplitMix64(seed: 42)
    #expect((0..<6).map { _ in pinned.uniform(0...99) } == [74, 15, 27, 34, 3, 86])
    var rng = SplitMix64(seed: 42)
    var counts = [Int](repeating: 0, count: 7)
    for _ in 0..<70_000 { counts[rng.uniform(3...9) - 3] += 1 }
    #expect(counts.allSatisfy { abs($0 - 10_000) < 400 }, "\(counts)")
    var a = SplitMix64(seed: 7)
    var b = SplitMix64(seed: 7)
    var values = Array(0..<10)
    a.shuffle(&values)
    #expect(values.sorted() == Array(0..<10) && values != Array(0..<10))
    var again = Array(0..<10)
    b.shuffle(&again)
    #expect(values == again)
}

@Test func familiesHaveBothMechanisms() {
    let mechanisms = Set(TaskFamily.allCases.map(\.mechanism))
    #expect(mechanisms == [.short, .chain, .choice])
}

@Test func jsonLinesRoundTrip() throws {
    for example in TaskSuite.examples(split: .train, count: 20, seed: 9) {
        let line = TaskSuite.jsonLine(example)
        #expect(!line.contains("\n"))
        #expect(try JSONDecoder().decode(TaskExample.self, from: Data(line.utf8)) == example)
    }
}
