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

    /// A request cancelled while it waits in line (its deadline passed, its client left) gives
    /// up its place at once, and the next one in line gets the slot.
    @Test func aCancelledWaitLeavesTheLine() async throws {
        let gate = AdmissionGate(limits: AdmissionLimits(concurrent: 1, queued: 2))
        try await gate.admit()
        let cancelled = Task { try await gate.admit() }
        while await gate.waiting < 1 { await Task.yield() }
        let next = Task { try await gate.admit() }
        while await gate.waiting < 2 { await Task.yield() }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        #expect(await gate.waiting == 1)
        await gate.leave()
        try await next.value
        #expect(await gate.running == 1)
        #expect(await gate.waiting == 0)
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
