import Foundation
import L2PDDecoding
import L2PDDefaultModel
import L2PDTasks
import L2PDTokenizer
import Testing

@testable import L2PDCluster
@testable import L2PDEngine

@Suite struct ServingTests {
    @Test func theAdmissionGateQueuesThenRefusesAndHandsSlotsOn() async throws {
        let gate = AdmissionGate(limits: AdmissionLimits(concurrent: 1, queued: 1))
        try await gate.admit()
        let second = Task { try await gate.admit() }
        while await gate.waiting < 1 { await Task.yield() }
        await #expect(throws: CoordinatorBusy.self) { try await gate.admit() }
        #expect(await gate.refused == 1)
        await gate.leave()  // the slot goes to the one in line
        try await second.value
        #expect(await gate.running == 1)
        #expect(await gate.waiting == 0)
        await gate.leave()
        #expect(await gate.running == 0)
        try await gate.admit()  // free again
        #expect(await gate.running == 1)
    }

    @Test func percentilesUseTheNearestRank() {
        let values = (1...100).map(Double.init).shuffled()
        #expect(LoadTest.percentile(values, 50) == 50)
        #expect(LoadTest.percentile(values, 90) == 90)
        #expect(LoadTest.percentile(values, 99) == 99)
        #expect(LoadTest.percentile([3, 1, 2], 50) == 2)
        #expect(LoadTest.percentile([], 50) == 0)
    }

    /// A fake coordinator that answers every third request "busy" and the rest correctly for
    /// even-numbered prompts: the report counts exactly that.
    @Test(arguments: [LoadTestArrivals.concurrency(3), .rate(2000)])
    func aLoadTestCountsOutcomesTokensAndAccuracy(arrivals: LoadTestArrivals) {
        let examples = TaskSuite.examples(split: .eval, count: 12, seed: 3)
        // The index leads each prompt: the suite may repeat a prompt, the fake must not confuse them.
        let prompts = examples.enumerated().map { LoadTestPrompt(prompt: "\($0)|\($1.prompt)", example: $1) }
        let report = LoadTest.run(
            plan: LoadTestPlan(requests: 12, arrivals: arrivals), prompts: prompts, template: GenerationRequest(prompt: "")
        ) {
            request in
            let i = Int(request.prompt.prefix { $0 != "|" })!
            if i % 3 == 2 { throw CoordinatorRefusal(kind: "busy", message: "busy") }
            var statistics = GenerationStatistics()
            statistics.nfe = 4
            statistics.usefulTokens = 10
            statistics.seconds = 0.01
            let text = i % 2 == 0 ? examples[i].answer : "wrong"
            let reply = GenerationReply(TextGenerator.Output(text: text, tokens: [1, 2, 3], canvas: [], statistics: statistics))
            return LoadTestReply(reply, firstBlockSeconds: Double(i) / 100)
        }
        #expect(report.requests == 12)
        #expect(report.ok == 8 && report.failed == 4)
        #expect(report.failed_by_kind == ["busy": 4])
        #expect(report.latencies.count == 8)
        #expect(report.mean_nfe == 4)
        #expect(report.accuracy == 4.0 / 8.0)  // prompts 0, 4, 6, 10 of the eight answered
        #expect(abs(report.tokens_per_s * report.seconds - 80) < 1e-6)
        // First blocks at i/100 s for the eight answered prompts 0, 1, 3, 4, 6, 7, 9, 10.
        #expect(report.first_block_p50 == 0.04 && report.first_block_p99 == 0.10)
    }

    /// Text is released only when a block is committed from the answer's start, and all of it
    /// once end-of-text is committed; the deltas add up to the final answer.
    @Test func theCommitStreamReleasesCompletedBlocksInOrder() throws {
        let directory = try #require(DefaultModel.directory)
        let tokenizer = try Tokenizer(contentsOf: directory.appendingPathComponent("tokenizer.json"))
        let (mask, eos) = (2, 1)
        let answer = tokenizer.encode("10 11 12 13 14")
        #expect(answer.count > 8 && !answer.contains(mask) && !answer.contains(eos))
        let canvas = answer + [eos, eos, eos]
        var stream = CommitStream(tokenizer: tokenizer, maskID: mask, endOfTextID: eos, blockLength: 4)
        var state = [Int](repeating: mask, count: canvas.count)
        func step(_ positions: [Int]) -> String? {
            for p in positions { state[p] = canvas[p] }
            return stream.update(StepEvent(step: 0, block: 0, answer: state, committed: positions, answerLength: canvas.count))
        }
        #expect(step([3, 2, 1]) == nil)  // the block's first position is still masked
        #expect(step([6, 7]) == nil)
        let first = try #require(step([0]))
        #expect(first == tokenizer.decode(Array(answer[0..<4]), skipSpecialTokens: true))
        #expect(step([canvas.count - 1]) == nil)
        var text = first
        let second = try #require(step([4, 5]))  // completes the second block
        text += second
        let rest = try #require(step(Array(8..<canvas.count - 1)))  // end-of-text committed
        text += rest
        #expect(stream.finished)
        #expect(text == tokenizer.decode(answer, skipSpecialTokens: true))
        #expect(step([]) == nil)
    }
}
