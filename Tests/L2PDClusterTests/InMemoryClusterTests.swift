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

/// A network pipeline to `count` workers over in-memory links (no sockets, no processes);
/// with `replicas` > 1, each stage's layers are served by that many workers.
struct InMemoryCluster {
    let pipeline: NetworkPipeline
    let links: [InMemoryFrameTransport]
    /// The worker side of each link, which tests may freeze.
    let workerEnds: [FreezableTransport]
    let nodes: [WorkerNode]
    let serving: [Task<Void, Never>]
    let config: ModelConfig

    init(count: Int, replicas: Int = 1, timeout: Double = 30, faultTolerance: FaultTolerance = FaultTolerance()) throws {
        let directory = try #require(DefaultModel.directory)
        config = try ModelConfig.load(from: directory.appendingPathComponent("config.json"))
        var coordinatorEnds: [any FrameTransport] = []
        var links: [InMemoryFrameTransport] = []
        var workerEnds: [FreezableTransport] = []
        var nodes: [WorkerNode] = []
        var serving: [Task<Void, Never>] = []
        for i in 0..<count * replicas {
            let (near, far) = InMemoryFrameTransport.pair(url: "memory://worker-\(i + 1)")
            let end = FreezableTransport(far)
            let node = try WorkerNode(transport: end, modelDirectory: directory, threads: 1) { _ in }
            serving.append(Task { await node.serve() })
            coordinatorEnds.append(near)
            links.append(near)
            workerEnds.append(end)
            nodes.append(node)
        }
        // Workers 1...count serve the stages in order, then the next `count` replicate them.
        let ranges = LayerPlan.even(layers: config.layers, stages: count)
        let endpoints = links.enumerated().map { WorkerEndpoint(url: $1.url, layers: ranges[$0 % count]) }
        pipeline = try NetworkPipeline(
            config: config, fingerprint: try ModelFingerprint.of(directory: directory), workers: endpoints,
            transports: coordinatorEnds, timeout: timeout, faultTolerance: faultTolerance)
        self.links = links
        self.workerEnds = workerEnds
        self.nodes = nodes
        self.serving = serving
    }

    func stop() {
        workerEnds.forEach { $0.thaw() }
        pipeline.close()
        serving.forEach { $0.cancel() }
    }
}

/// `WorkerNode` and `NetworkPipeline` tested over in-memory links, as swift-nio tests handlers
/// on an embedded channel: the same code that runs over nng, with no sockets.
@Suite struct InMemoryClusterTests {
    @Test func workersOverInMemoryLinksGiveTheTokensOfOneProcess() async throws {
        let cluster = try InMemoryCluster(count: 2)
        defer { cluster.stop() }
        let bundle = try ModelBundle(directory: try #require(DefaultModel.directory))
        let local = TextGenerator(tokenizer: bundle.tokenizer, pipeline: try InProcessPipeline(checkpoint: bundle.checkpoint))
        let remote = TextGenerator(tokenizer: bundle.tokenizer, pipeline: cluster.pipeline)
        for cache in [CacheMode.none, .dual] {
            var options = GenerationOptions()
            options.genLength = 64
            options.blockLength = 16
            options.cache = cache
            options.policy = ThresholdPolicy(threshold: 0.9)
            for (i, prompt) in ["What is 12 + 30?", "Copy: a b c"].enumerated() {
                let a = try await local.generate(prompt, options: options, sequenceID: UInt64(i + 1))
                let b = try await remote.generate(prompt, options: options, sequenceID: UInt64(i + 1))
                #expect(a.tokens == b.tokens, "\(cache) \(prompt)")
            }
        }
        #expect(cluster.pipeline.statistics.forwards > 0)
        #expect(cluster.pipeline.connectedWorkers == 2)
    }

    /// Concurrent forwards after a (re)connection share one handshake: a second assignment
    /// would reset the worker's caches under another request.
    @Test func concurrentForwardsShareOneHandshakePerWorker() async throws {
        let directory = try #require(DefaultModel.directory)
        let config = try ModelConfig.load(from: directory.appendingPathComponent("config.json"))
        let fingerprint = try ModelFingerprint.of(directory: directory)
        let (near, far) = InMemoryFrameTransport.pair(url: "memory://fake")
        let counted = CountingTransport(far)
        let worker = FakeWorker(transport: counted, fingerprint: fingerprint) { s in
            Readout(positions: s.readPositions, tokens: s.readPositions.map { _ in 5 }, confidences: s.readPositions.map { _ in 0.5 })
        }
        defer { worker.close() }
        let pipeline = try NetworkPipeline(
            config: config, fingerprint: fingerprint, workers: [WorkerEndpoint(url: near.url, layers: 0..<config.layers)],
            transports: [near], timeout: 5)
        defer { pipeline.close() }
        func burst() async throws {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for id in UInt64(1)...8 {
                    group.addTask {
                        let s = SequenceForward(sequenceID: id, length: 4, readPositions: [3])
                        _ = try await pipeline.forward([s], tokens: [1, 2, 3, 4])
                    }
                }
                try await group.waitForAll()
            }
        }
        try await burst()
        #expect(counted.assignments == 1)
        near.disconnect()
        near.reconnect()
        try await burst()
        #expect(counted.assignments == 2)
    }

    /// A worker lost while a pass waits on another stage fails that pass at once, naming the
    /// lost worker; once it is back, the next request is served again.
    @Test func aLostWorkerFailsThePassInFlightAtOnceAndServesAgainAfterReconnecting() async throws {
        let cluster = try InMemoryCluster(count: 2, faultTolerance: FaultTolerance(retryWindow: 0))
        defer { cluster.stop() }
        try await cluster.pipeline.connect()
        // Stage 2 is slowed by a stalled link: its frames wait while worker 2 is "down".
        let sequence = SequenceForward(sequenceID: 1, length: 8, readPositions: [7])
        cluster.links[1].disconnect()
        let pass = Task { try await cluster.pipeline.forward([sequence], tokens: Array(repeating: 5, count: 8)) }
        try await Task.sleep(for: .milliseconds(100))
        let start = ContinuousClock.now
        cluster.links[0].disconnect()
        let error = await #expect(throws: ClusterError.self) { try await pass.value }
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(String(describing: error!).contains("worker"), "\(error!)")
        #expect(cluster.pipeline.connectedWorkers == 0)
        cluster.links[0].reconnect()
        cluster.links[1].reconnect()
        let readouts = try await cluster.pipeline.forward([sequence], tokens: Array(repeating: 5, count: 8))
        #expect(readouts.count == 1 && readouts[0].positions == [7])
    }

    /// A worker that never answers fails the request after the stage timeout, naming it.
    @Test func aSilentWorkerTimesOutByName() async throws {
        let directory = try #require(DefaultModel.directory)
        let config = try ModelConfig.load(from: directory.appendingPathComponent("config.json"))
        let (near, far) = InMemoryFrameTransport.pair(url: "memory://silent")
        let pipeline = try NetworkPipeline(
            config: config, fingerprint: 1, workers: [WorkerEndpoint(url: near.url, layers: 0..<config.layers)],
            transports: [near], timeout: 0.3)
        defer {
            pipeline.close()
            far.close()
        }
        let error = await #expect(throws: ClusterError.self) { try await pipeline.connect() }
        #expect(String(describing: error!) == "worker 1 at memory://silent did not answer within 0.3 s")
    }
}

/// Counts the shard assignments that pass through to a worker.
final class CountingTransport: FrameTransport, @unchecked Sendable {
    private let inner: any FrameTransport
    private let lock = NSLock()
    private var count = 0
    init(_ inner: any FrameTransport) { self.inner = inner }
    var assignments: Int { lock.withLock { count } }
    var url: String { inner.url }
    func send(_ frame: [UInt8], timeout: Double, completion: @escaping @Sendable ((any Error)?) -> Void) {
        inner.send(frame, timeout: timeout, completion: completion)
    }
    func receive(completion: @escaping @Sendable (Result<[UInt8], any Error>) -> Void) -> CancelHandle {
        inner.receive { [self] result in
            if case .success(let frame) = result, let decoded = try? Frame.decode(frame), case .shardAssignment = decoded.message {
                lock.withLock { count += 1 }
            }
            completion(result)
        }
    }
    var connectionCount: Int { inner.connectionCount }
    var disconnectionCount: Int { inner.disconnectionCount }
    var isConnected: Bool { inner.isConnected }
    func onConnectionChange(_ handler: @escaping @Sendable (ConnectionEvent) -> Void) { inner.onConnectionChange(handler) }
    func close() { inner.close() }
}

/// A worker's end of a link that can be frozen like a process under SIGSTOP: while frozen,
/// frames reach it but nothing is handled or answered; thawing delivers them in order.
final class FreezableTransport: FrameTransport, @unchecked Sendable {
    private let inner: any FrameTransport
    private let lock = NSLock()
    private var frozen = false
    private var held: [() -> Void] = []
    init(_ inner: any FrameTransport) { self.inner = inner }

    func freeze() { lock.withLock { frozen = true } }
    func thaw() {
        let release = lock.withLock { () -> [() -> Void] in
            frozen = false
            defer { held = [] }
            return held
        }
        release.forEach { $0() }
    }

    var url: String { inner.url }
    func send(_ frame: [UInt8], timeout: Double, completion: @escaping @Sendable ((any Error)?) -> Void) {
        inner.send(frame, timeout: timeout, completion: completion)
    }
    func receive(completion: @escaping @Sendable (Result<[UInt8], any Error>) -> Void) -> CancelHandle {
        inner.receive { [self] result in
            let deliver = { completion(result) }
            let now = lock.withLock { () -> Bool in
                if frozen { held.append(deliver) }
                return !frozen
            }
            if now { deliver() }
        }
    }
    var connectionCount: Int { inner.connectionCount }
    var disconnectionCount: Int { inner.disconnectionCount }
    var isConnected: Bool { inner.isConnected }
    func onConnectionChange(_ handler: @escaping @Sendable (ConnectionEvent) -> Void) { inner.onConnectionChange(handler) }
    func close() { inner.close() }
}
