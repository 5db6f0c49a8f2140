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

@Test func answersAreVerifiedIndependently() {
    for example in TaskSuite.examples(split: .eval, count: 300, seed: 3) {
        switch example.family {
        case .addition:
            let numbers = example.prompt.dropFirst("What is ".count).dropLast().split(separator: " + ").map { Int($0)! }
            #expect(Int(example.expected) == numbers[0] + numbers[1])
        case .copy:
            #expect(example.prompt == "Copy the digits \(example.expected).")
        case .sequence:
            let numbers = example.expected.split(separator: " ").map { Int($0)! }
            #expect(zip(numbers, numbers.dropFirst()).allSatisfy { $1 == $0 + 1 })
            #expect(example.prompt == "Count from \(numbers.first!) to \(numbers.last!).")
        case .multiples:
            let numbers = example.expected.split(separator: " ").map { Int($0)! }
            let k = numbers[0]
            #expect(numbers == (1...numbers.count).map { $0 * k })
            #expect(example.prompt == "List the multiples of \(k) from \(k) to \(numbers.last!).")
        case .count:
            let words = example.prompt.split(separator: " ")
            let digit = words[4].first!
            let haystack = words.last!.dropLast()
            #expect(Int(example.expected) == haystack.filter { $0 == digit }.count)
        }
    }
}

@Test func wrongOutputsAreRejected() {
    let add = TaskExample(family: .addition, prompt: "What is 12 + 30?", answer: "12 + 30 = 42", expected: "42")
    #expect(!TaskSuite.isCorrect(add, output: "12 + 30 = 43"))
    #expect(!TaskSuite.isCorrect(add, output: ""))
    #expect(TaskSuite.isCorrect(add, output: "42"))
    let copy = TaskExample(family: .copy, prompt: "Copy the digits 123.", answer: "123", expected: "123")
    #expect(!TaskSuite.isCorrect(copy, output: "1234"))
    let count = TaskExample(family: .count, prompt: "How many times does 1 occur in 1121?", answer: "1 occurs 3 times", expected: "3")
    #expect(TaskSuite.extractAnswer(family: .count, from: "1 occurs 3 times") == "3")
    #expect(!TaskSuite.isCorrect(count, output: "1 occurs 2 times"))
}

@Test func answerLengthsSpanShortToLong() {
    let lengths = TaskSuite.examples(split: .train, count: 1000, seed: 5).map(\.answer.count)
    #expect(lengths.min()! <= 10)
    #expect(lengths.max()! >= 150)  // characters; sequences of 3-digit numbers run to about 200 tokens
}

@Test func jsonLinesRoundTrip() throws {
    for example in TaskSuite.examples(split: .train, count: 20, seed: 9) {
        let line = TaskSuite.jsonLine(example)
        #expect(!line.contains("\n"))
        #expect(try JSONDecoder().decode(TaskExample.self, from: Data(line.utf8)) == example)
    }
}
