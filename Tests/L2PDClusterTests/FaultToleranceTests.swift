import Foundation
import L2PDDecoding
import L2PDDefaultModel
import L2PDEngine
import L2PDModel
import L2PDProtocol
import L2PDStageIO
import L2PDTransport
import Testing

@testable import L2PDCluster

/// Lost, restarted and frozen workers over in-memory links: requests finish with the answer an
/// undisturbed run gives, within the retry window or on a replica.
@Suite struct FaultToleranceTests {
    /// One token per step, so each block has many cache-reusing steps after its refresh.
    static func options(cache: CacheMode) -> GenerationOptions {
        var options = GenerationOptions()
        options.genLength = 32
        options.blockLength = 16
        options.steps = 32
        options.cache = cache
        return options
    }

    static let prompts = ["What is 12 + 30?", "Copy: a b c"]

    /// The answers of one process, the reference every disturbed run must equal.
    static func undisturbed(cache: CacheMode) async throws -> [[Int]] {
        let bundle = try ModelBundle(directory: try #require(DefaultModel.directory))
        let local = TextGenerator(tokenizer: bundle.tokenizer, pipeline: try InProcessPipeline(checkpoint: bundle.checkpoint))
        var answers: [[Int]] = []
        for (i, prompt) in prompts.enumerated() {
            answers.append(try await local.generate(prompt, options: options(cache: cache), sequenceID: UInt64(i + 1)).tokens)
        }
        return answers
    }

    /// A worker that drops out mid-request and comes back (a restart: its caches are gone) is
    /// waited for; the pass runs again after its cache refresh is replayed, and the answer is
    /// the undisturbed one.
    @Test(arguments: [CacheMode.none, .dual])
    func aWorkerThatRejoinsWithinTheRetryWindowLosesNoRequest(cache: CacheMode) async throws {
        let expected = try await Self.undisturbed(cache: cache)
        let cluster = try InMemoryCluster(count: 2)
        defer { cluster.stop() }
        let bundle = try ModelBundle(directory: try #require(DefaultModel.directory))
        let remote = TextGenerator(tokenizer: bundle.tokenizer, pipeline: cluster.pipeline)
        for (i, prompt) in Self.prompts.enumerated() {
            let link = cluster.links[1]
            let tokens = try await remote.generate(prompt, options: Self.options(cache: cache), sequenceID: UInt64(i + 1)) { event in
                guard event.step == 3 else { return }
                link.disconnect()
                DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) { link.reconnect() }
            }.tokens
            #expect(tokens == expected[i], "\(cache) \(prompt)")
        }
        let faults = cluster.pipeline.faultCounters
        #expect(faults.retriedPasses >= 2)
        #expect(faults.lostWorkers == 2)
        if cache == .dual { #expect(faults.replayedRefreshes >= 2) }
    }

    /// Past the retry window the request fails, naming the worker that did not come back.
    @Test func aWorkerThatStaysAwayFailsTheRequestAfterTheRetryWindow() async throws {
        let cluster = try InMemoryCluster(count: 2, faultTolerance: FaultTolerance(retryWindow: 0.3))
        defer { cluster.stop() }
        try await cluster.pipeline.connect()
        cluster.links[1].disconnect()
        let start = ContinuousClock.now
        let error = await #expect(throws: ClusterError.self) {
            _ = try await cluster.pipeline.forward(
                [SequenceForward(sequenceID: 1, length: 8, readPositions: [7])], tokens: Array(repeating: 5, count: 8))
        }
        // Well inside the pass's own 60 s timeout, with room for a loaded machine.
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(String(describing: error!).contains("memory://worker-2"), "\(error!)")
        #expect(String(describing: error!).contains("within 0.3 s"), "\(error!)")
    }

    /// With two replicas per stage, requests are spread over them; when one is lost for good
    /// its requests move to the survivor with their caches rebuilt, and every answer is the
    /// undisturbed one.
    @Test func requestsMoveToAReplicaWhenTheirWorkerIsLost() async throws {
        let expected = try await Self.undisturbed(cache: .dual)
        let cluster = try InMemoryCluster(count: 2, replicas: 2)
        defer { cluster.stop() }
        let bundle = try ModelBundle(directory: try #require(DefaultModel.directory))
        let remote = TextGenerator(tokenizer: bundle.tokenizer, pipeline: cluster.pipeline)
        let victim = cluster.links[1]  // stage 2, first replica
        let answers = try await withThrowingTaskGroup(of: (Int, [Int]).self) { group in
            for (i, prompt) in Self.prompts.enumerated() {
                group.addTask {
                    let output = try await remote.generate(prompt, options: Self.options(cache: .dual), sequenceID: UInt64(i + 1)) {
                        event in
                        if i == 0 && event.step == 3 { victim.disconnect() }
                    }
                    return (i, output.tokens)
                }
            }
            var answers = [[Int]](repeating: [], count: Self.prompts.count)
            for try await (i, tokens) in group { answers[i] = tokens }
            return answers
        }
        #expect(answers == expected)
        let faults = cluster.pipeline.faultCounters
        #expect(faults.movedSequences >= 1)
        #expect(faults.replayedRefreshes >= 1)
        #expect(cluster.pipeline.workerStatuses.map(\.state) == [.up, .disconnected, .up, .up])
        #expect(cluster.pipeline.canServe)
        // Every worker still connected that held a request's caches, the old route's included, freed them.
        #expect([0, 2, 3].map { cluster.nodes[$0].cachedSequenceCount } == [0, 0, 0])
    }

    /// A frozen worker (connected, silent) misses its heartbeats and is marked down within the
    /// limit; the pass waiting on it moves to a replica and finishes; thawed, it is up again.
    @Test func aFrozenWorkerIsMarkedDownAndItsPassMovesToAReplica() async throws {
        let tolerance = FaultTolerance(retryWindow: 10, heartbeatInterval: 0.1, heartbeatMisses: 3)
        let cluster = try InMemoryCluster(count: 1, replicas: 2, faultTolerance: tolerance)
        defer { cluster.stop() }
        try await cluster.pipeline.connect()
        let sequence = SequenceForward(sequenceID: 1, length: 8, readPositions: [7])
        let first = try await cluster.pipeline.forward([sequence], tokens: Array(repeating: 5, count: 8))
        cluster.workerEnds[0].freeze()  // the replica that served it (least loaded, first)
        let start = ContinuousClock.now
        var downAfter: Duration?
        while ContinuousClock.now - start < .seconds(10) {
            if cluster.pipeline.workerStatuses[0].state == .down {
                downAfter = ContinuousClock.now - start
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let after = try #require(downAfter, "the frozen worker was never marked down")
        #expect(after < .seconds(5))  // 0.3 s of missed heartbeats, with room for a loaded machine
        #expect(cluster.pipeline.faultCounters.lostWorkers == 1)
        let second = try await cluster.pipeline.forward([sequence], tokens: Array(repeating: 5, count: 8))
        #expect(second == first)
        cluster.workerEnds[0].thaw()
        let thawed = ContinuousClock.now
        while cluster.pipeline.workerStatuses[0].state != .up && ContinuousClock.now - thawed < .seconds(10) {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(cluster.pipeline.workerStatuses[0].state == .up)
    }

    /// A request past its deadline fails with 504 while a stage is stuck, and its caches on the
    /// stages that still answer are freed.
    @Test func aRequestPastItsDeadlineTimesOutAndFreesItsCaches() async throws {
        let cluster = try InMemoryCluster(count: 2, faultTolerance: FaultTolerance(retryWindow: 60))
        defer { cluster.stop() }
        let bundle = try ModelBundle(directory: try #require(DefaultModel.directory))
        let coordinator = Coordinator(pipeline: cluster.pipeline, tokenizer: bundle.tokenizer, filter: nil, requestTimeout: 30)
        try await coordinator.connect()
        cluster.workerEnds[1].freeze()
        var request = GenerationRequest(prompt: "What is 12 + 30?")
        request.parameters.cache = "dual"
        request.parameters.genLength = 32
        request.parameters.policy = "threshold"
        request.timeout = 0.5
        let start = ContinuousClock.now
        let error = await #expect(throws: RequestTimedOut.self) { _ = try await coordinator.generate(request) }
        #expect(ContinuousClock.now - start < .seconds(10))  // the 0.5 s deadline, not the 60 s retry window
        #expect(ErrorClass.of(error!).httpStatus == 504)
        #expect(cluster.nodes[0].cachedSequenceCount == 0)
        #expect(await coordinator.statistics.timedOut == 1)
    }
}
