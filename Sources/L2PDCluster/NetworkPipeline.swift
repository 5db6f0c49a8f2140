import Foundation
import L2PDDecoding
import L2PDModel
import L2PDProtocol
import L2PDStageIO
import L2PDTransport

/// The `Pipeline` of a cluster. A forward pass is chained by default: the coordinator sends the
/// tokens to the first stage, each worker sends its hidden states straight to the next stage of
/// the sequence's route, and the last answers with the readout (`stages + 1` transits, and the
/// coordinator carries no hidden state). With `.relay` links, each stage answers the
/// coordinator, which sends its hidden states on (`2 × stages` transits). A worker that
/// (re)connects is greeted and assigned its layers before its next frame.
///
/// Workers with the same layer range are replicas of one stage: each sequence keeps a route
/// (one replica per stage) while its K/V caches live there, chosen least loaded first. A pass
/// that loses a worker runs again within the retry window, on the rejoined worker or a
/// replica, after replaying the sequence's last cache refresh there: the decoder's state is the
/// canvas, so the answer is the one an undisturbed run gives. Heartbeats mark a silent
/// (frozen) worker down and move its passes the same way.
public final class NetworkPipeline: ServingPipeline, @unchecked Sendable {
    // @unchecked: mutable state (worker and sequence state, counters, statistics) is guarded
    // by `lock`, which is never held while calling into a transport.
    public let config: ModelConfig
    public let workers: [WorkerEndpoint]
    public let fingerprint: UInt64
    /// The workers (indices into `workers`) of each stage, stages in layer order.
    public let stages: [[Int]]
    /// How a pass travels from stage to stage now: chained passes fall back to relayed ones for
    /// good when a worker cannot send them on.
    public var linkMode: StageLinks { lock.withLock { mode } }
    private var mode: StageLinks
    private let links: [FrameExchanger]
    private let timeout: Double
    private let tolerance: FaultTolerance
    private let secret: [UInt8]
    private let log: @Sendable (String) -> Void
    private let linkCheck: (@Sendable (String) -> String?)?
    private let lock = NSLock()
    private var state: [WorkerState]
    private var sequences: [UInt64: SequenceState] = [:]
    private var nextRequestID: UInt64 = 1
    private var wire = WireStatistics()
    private var faults = FaultCounters()
    private let assignments: [SingleFlight]
    private var heartbeat: Task<Void, Never>?

    private struct WorkerState {
        /// The connection the worker was assigned its layers on (-1: needs a handshake).
        var assignedConnection = -1
        /// Grows with each handshake, which empties the worker's caches.
        var epoch = 0
        /// Silent past the heartbeat limit.
        var down = false
        /// Passes waiting on it now.
        var inFlight = 0
        /// Sequences whose caches it holds.
        var routed = 0
        var pinging = false
        /// Bytes of weights and of K/V caches it reported in its last pong (nil: none yet).
        var held: (weights: UInt64, cache: UInt64)?
    }

    private struct SequenceState {
        /// The worker of each stage holding the sequence's caches.
        var route: [Int]
        /// Those workers' epochs when the caches were built (nil: not built).
        var epochs: [Int]?
        /// Every worker that may still hold some of its caches (to release them).
        var holders: Set<Int>
        /// The last cache refresh, replayed to rebuild caches on a new or restarted worker.
        var refresh: (forward: SequenceForward, tokens: [Int])?
    }

    /// Dials every worker over nng. `timeout`: seconds a stage may take for one frame before
    /// the request fails.
    public convenience init(
        config: ModelConfig, fingerprint: UInt64, workers: [WorkerEndpoint], timeout: Double = 60,
        faultTolerance: FaultTolerance = FaultTolerance(), clusterSecret: String? = nil, tls: TLSConfiguration? = nil,
        links: StageLinks = .chained, log: @escaping @Sendable (String) -> Void = { _ in }
    ) throws {
        _ = try Self.stages(of: workers, layers: config.layers)
        let sockets = try workers.map {
            try PairSocket.dial($0.url, maxMessageBytes: ProtocolLimits.maxFrameBytes, tls: TLSConfiguration.isTLS($0.url) ? tls : nil)
        }
        try self.init(
            config: config, fingerprint: fingerprint, workers: workers, transports: sockets, timeout: timeout,
            faultTolerance: faultTolerance, clusterSecret: clusterSecret, links: links, log: log,
            linkCheck: { url in TLSConfiguration.diagnose(url: url, tls: TLSConfiguration.isTLS(url) ? tls : nil) })
    }

    /// Runs passes through `transports`, one per worker (nng sockets, or in-memory links in
    /// tests; chained passes need workers that can dial each other's URLs). `linkCheck` names what is wrong with a worker's address when it cannot be reached at
    /// start-up (a TLS problem, found by a handshake of its own; blocking, run off the pool).
    public init(
        config: ModelConfig, fingerprint: UInt64, workers: [WorkerEndpoint], transports: [any FrameTransport], timeout: Double = 60,
        faultTolerance: FaultTolerance = FaultTolerance(), clusterSecret: String? = nil, links linkMode: StageLinks = .relay,
        log: @escaping @Sendable (String) -> Void = { _ in }, linkCheck: (@Sendable (String) -> String?)? = nil
    ) throws {
        self.linkCheck = linkCheck
        mode = linkMode
        stages = try Self.stages(of: workers, layers: config.layers)
        precondition(transports.count == workers.count, "one transport per worker")
        self.config = config
        self.fingerprint = fingerprint
        self.workers = workers
        self.timeout = timeout
        tolerance = faultTolerance
        secret = Array((clusterSecret ?? "").utf8)
        self.log = log
        links = transports.map { FrameExchanger($0, replyKey: NetworkPipeline.replyKey) }
        state = Array(repeating: WorkerState(), count: workers.count)
        assignments = workers.map { _ in SingleFlight() }
        // A lost worker fails the waits on it (its exchanger does that); passes that already
        // left it are fine, and its caches are rebuilt where the sequence goes next.
        for (j, transport) in transports.enumerated() {
            transport.onConnectionChange { [weak self] event in
                guard event == .disconnected, let self else { return }
                let serving = self.lock.withLock { () -> Bool in
                    let serving = self.state[j].assignedConnection >= 0 && !self.state[j].down
                    if serving { self.faults.lostWorkers += 1 }
                    self.state[j].down = false  // disconnected now; assigned afresh when it returns
                    return serving
                }
                if serving { log("worker \(j + 1) at \(workers[j].url) disconnected") }
            }
        }
        if tolerance.heartbeatInterval > 0 {
            let interval = Duration.milliseconds(Int(tolerance.heartbeatInterval * 1000))
            heartbeat = Task.detached { [weak self] in
                while !Task.isCancelled {
                    guard let self else { return }
                    self.sendHeartbeats()
                    try? await Task.sleep(for: interval)
                }
            }
        }
    }

    deinit { heartbeat?.cancel() }

    /// Stages of `workers`: their distinct layer ranges in order, which must cover the model
    /// once; workers sharing a range are that stage's replicas.
    static func stages(of workers: [WorkerEndpoint], layers: Int) throws -> [[Int]] {
        let ranges = Set(workers.map(\.layers)).sorted { $0.lowerBound < $1.lowerBound }
        try LayerPlan.validate(ranges, layers: layers)
        return ranges.map { range in workers.indices.filter { workers[$0].layers == range } }
    }

    /// The request id of a reply frame (nil when it is too short to carry a header).
    private static let replyKey: @Sendable ([UInt8]) -> UInt64? = { frame in
        guard frame.count >= 16 else { return nil }
        return frame.withUnsafeBytes { FrameHeader.replyIdentity(for: $0).requestID }
    }

    public var statistics: WireStatistics { lock.withLock { wire } }
    public var faultCounters: FaultCounters { lock.withLock { faults } }
    public var workerCount: Int { workers.count }

    /// Workers with a live connection now.
    public var connectedWorkers: Int { links.filter(\.transport.isConnected).count }

    public var workerStatuses: [WorkerStatus] {
        let connected = links.map(\.transport.isConnected)
        let (down, held) = lock.withLock { (state.map(\.down), state.map(\.held)) }
        return workers.indices.map {
            WorkerStatus(
                url: workers[$0].url, layers: workers[$0].layers, state: !connected[$0] ? .disconnected : down[$0] ? .down : .up,
                weightBytes: held[$0]?.weights, cacheBytes: held[$0]?.cache)
        }
    }

    /// The workers hold the weights, not this process.
    public var heldWeightBytes: Int? { nil }

    /// Whether every stage has a worker that can serve now.
    public var canServe: Bool {
        let usable = usableWorkers()
        return stages.allSatisfy { $0.contains { usable[$0] } }
    }

    /// Greets and assigns every worker now (the coordinator's start-up check).
    public func connect() async throws {
        for j in workers.indices {
            do { try await ensureAssigned(j) } catch {
                // A link that cannot work (wrong CA, expired certificate, TLS against plaintext)
                // fails at once with its cause instead of waiting out the connect timeout.
                if let linkCheck, let problem = try await OffPool.run({ [url = workers[j].url] in linkCheck(url) }) {
                    throw ClusterError("worker \(j + 1): \(problem)", class: .unavailable)
                }
                throw error
            }
        }
    }

    public func close() {
        heartbeat?.cancel()
        links.forEach { $0.close() }
    }

    // MARK: Forward passes

    public func forward(_ batch: [SequenceForward], tokens: [Int]) async throws -> [Readout] {
        var slices: [[Int]] = []
        var offset = 0
        for s in batch {
            guard offset + s.computed.count <= tokens.count else { break }
            slices.append(Array(tokens[offset..<offset + s.computed.count]))
            offset += s.computed.count
        }
        guard slices.count == batch.count, offset == tokens.count else {
            throw ClusterError("the batch computes \(offset) positions but carries \(tokens.count) tokens", class: .internalError)
        }
        var deadline: ContinuousClock.Instant?
        let full = batch.contains { $0.cache != .reuse }
        while true {
            do {
                let started = ContinuousClock.now
                let readouts = try await attempt(batch, tokens: slices)
                let elapsed = (ContinuousClock.now - started).components
                let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
                lock.withLock {
                    if full {
                        wire.fullPasses += 1
                        wire.fullPassSeconds += seconds
                    } else {
                        wire.cachedSteps += 1
                        wire.cachedStepSeconds += seconds
                    }
                }
                return readouts
            } catch let error as ClusterError where error.workerLost {
                // The canvas is intact here: wait for the worker (or a replica), then run again.
                let now = ContinuousClock.now
                let end = deadline ?? now + .milliseconds(Int(tolerance.retryWindow * 1000))
                deadline = end
                guard now < end else { throw error }
                lock.withLock { faults.retriedPasses += 1 }
                try await waitUntilServable(before: end, else: error)
            }
        }
    }

    /// Workers that are connected and answering heartbeats.
    private func usableWorkers() -> [Bool] {
        let connected = links.map(\.transport.isConnected)
        return lock.withLock { workers.indices.map { connected[$0] && !state[$0].down } }
    }

    private func waitUntilServable(before deadline: ContinuousClock.Instant, else error: ClusterError) async throws {
        while !canServe {
            guard ContinuousClock.now < deadline else {
                throw ClusterError(
                    "\(error.description); no worker for its layers came back within \(tolerance.retryWindow) s", workerLost: false)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// One try at the batch: routes, handshakes, cache replays where caches were lost, then
    /// the passes (one per route, concurrently).
    private func attempt(_ batch: [SequenceForward], tokens: [[Int]]) async throws -> [Readout] {
        let routes = try chooseRoutes(batch, usable: usableWorkers())
        for j in Set(routes.joined()).sorted() { try await ensureAssigned(j) }
        let (epochs, replays) = try lock.withLock { () -> ([[Int]], [Bool]) in
            let epochs = routes.map { $0.map { state[$0].epoch } }
            let replays = try batch.indices.map { k -> Bool in
                let s = batch[k]
                guard s.cache == .reuse, sequences[s.sequenceID]?.epochs != epochs[k] else { return false }
                guard sequences[s.sequenceID]?.refresh != nil else {
                    throw ClusterError(
                        "sequence \(s.sequenceID) reuses caches no refresh built (a decoder bug)", class: .internalError)
                }
                return true
            }
            return (epochs, replays)
        }
        var readouts = [Readout?](repeating: nil, count: batch.count)
        let groups = Dictionary(grouping: batch.indices, by: { routes[$0] })
        if groups.count == 1, let (route, members) = groups.first {
            // One route (the usual case): no child task, so no hop between threads.
            let answered = try await run(route: route, epochs: epochs[members[0]], members: members, batch, tokens, replays: replays)
            for (k, r) in answered { readouts[k] = r }
        } else {
            try await withThrowingTaskGroup(of: [(Int, Readout)].self) { group in
                for (route, members) in groups {
                    group.addTask { [self] in
                        try await run(route: route, epochs: epochs[members[0]], members: members, batch, tokens, replays: replays)
                    }
                }
                for try await answered in group { for (k, r) in answered { readouts[k] = r } }
            }
        }
        lock.withLock {
            for (k, s) in batch.enumerated() where s.cache == .refresh || replays[k] {
                sequences[s.sequenceID]?.epochs = epochs[k]
            }
        }
        return readouts.map { $0! }
    }

    /// The batch's sequences on one route: replays first, then the pass itself.
    private func run(
        route: [Int], epochs: [Int], members: [Int], _ batch: [SequenceForward], _ tokens: [[Int]], replays: [Bool]
    ) async throws -> [(Int, Readout)] {
        let replayed = members.filter { replays[$0] }
        if !replayed.isEmpty {
            let refreshes = lock.withLock { replayed.map { sequences[batch[$0].sequenceID]!.refresh! } }
            let forwards = refreshes.map { r -> SequenceForward in
                var f = r.forward
                (f.readPositions, f.wantsEOSProbability, f.topK) = ([], false, 0)
                return f
            }
            _ = try await pass(route: route, epochs: epochs, forwards, tokens: refreshes.flatMap(\.tokens))
            lock.withLock { faults.replayedRefreshes += replayed.count }
        }
        let readouts = try await pass(route: route, epochs: epochs, members.map { batch[$0] }, tokens: members.flatMap { tokens[$0] })
        return Array(zip(members, readouts))
    }

    /// A route for each sequence: its own while it reuses caches and its workers serve (the
    /// surviving part of it otherwise), the least loaded replicas when it builds caches anew.
    /// Records each refresh, which a lost cache is rebuilt from.
    private func chooseRoutes(_ batch: [SequenceForward], usable: [Bool]) throws -> [[Int]] {
        try lock.withLock {
            func leastLoaded(_ stage: Int) throws -> Int {
                let candidates = stages[stage].filter { usable[$0] }
                guard
                    let best = candidates.min(by: {
                        (state[$0].routed, state[$0].inFlight, $0) < (state[$1].routed, state[$1].inFlight, $1)
                    })
                else {
                    let range = workers[stages[stage][0]].layers
                    let urls = stages[stage].map { workers[$0].url }.joined(separator: ", ")
                    throw ClusterError(
                        "no worker serves layers \(range.lowerBound)..<\(range.upperBound) now (\(urls) lost)", workerLost: true)
                }
                return best
            }
            var routes: [[Int]] = []
            for s in batch {
                let id = s.sequenceID
                switch s.cache {
                case .none:
                    routes.append(try stages.indices.map(leastLoaded))
                case .refresh:
                    if let old = sequences[id] { old.route.forEach { state[$0].routed -= 1 } }
                    let route = try stages.indices.map(leastLoaded)
                    route.forEach { state[$0].routed += 1 }
                    var entry = sequences[id] ?? SequenceState(route: route, holders: [])
                    entry.route = route
                    entry.epochs = nil
                    entry.holders.formUnion(route)
                    entry.refresh = nil  // set below, once its tokens are known
                    sequences[id] = entry
                    routes.append(route)
                case .reuse:
                    guard var entry = sequences[id] else {
                        throw ClusterError("sequence \(id) reuses caches it never built (a decoder bug)", class: .internalError)
                    }
                    if !entry.route.allSatisfy({ usable[$0] }) {
                        entry.route.forEach { state[$0].routed -= 1 }
                        entry.route = try stages.indices.map { usable[entry.route[$0]] ? entry.route[$0] : try leastLoaded($0) }
                        entry.route.forEach { state[$0].routed += 1 }
                        entry.holders.formUnion(entry.route)
                        entry.epochs = nil
                        faults.movedSequences += 1
                        sequences[id] = entry
                    }
                    routes.append(entry.route)
                }
            }
            return routes
        }
    }

    /// Runs `batch` through the workers of `route`, stage by stage. Fails as a lost worker when
    /// one of them is down or was re-assigned (its caches emptied) since `epochs`.
    private func pass(route: [Int], epochs: [Int], _ batch: [SequenceForward], tokens: [Int]) async throws -> [Readout] {
        if batch.contains(where: { $0.cache == .refresh }) {
            var offset = 0
            lock.withLock {
                for s in batch {
                    if s.cache == .refresh { sequences[s.sequenceID]?.refresh = (s, Array(tokens[offset..<offset + s.computed.count])) }
                    offset += s.computed.count
                }
            }
        }
        let step = UInt32(clamping: batch.first?.sampling.step ?? 0)
        if linkMode == .chained && route.count > 1 && route.dropFirst().allSatisfy({ workers[$0].stageURL != nil }) {
            do { return try await chainedPass(route: route, epochs: epochs, batch, tokens: tokens, step: step) } catch let refusal
                as ChainUnsupported
            {
                let first = lock.withLock { () -> Bool in
                    defer { mode = .relay }
                    return mode == .chained
                }
                if first { log("passes are relayed from now on: \(refusal.reason)") }
            }
        }
        var input = ForwardInput.tokens(tokens)
        for (i, j) in route.enumerated() {
            let current = lock.withLock { state[j].down ? nil : state[j].epoch }
            guard current == epochs[i], links[j].transport.isConnected else {
                throw ClusterError("worker \(j + 1) at \(workers[j].url) was lost during the request", workerLost: true)
            }
            lock.withLock { state[j].inFlight += 1 }
            defer { lock.withLock { state[j].inFlight -= 1 } }
            let reply = try await exchange(
                j, .forward(ForwardRequest(batch: batch, input: input)), step: step, stage: i, watching: true)
            switch reply {
            case .hiddenStates(let states) where i < route.count - 1:
                let rows = batch.reduce(0) { $0 + $1.computed.count }
                guard states.hidden.dModel == config.dModel, states.hidden.values.count == rows * config.dModel else {
                    throw protocolError(j, "sent \(states.hidden.values.count) hidden values, expected \(rows) rows of \(config.dModel)")
                }
                input = .hidden(states.hidden)
            case .readout(let readout) where i == route.count - 1:
                return try check(readout, from: j, answering: batch)
            default:
                throw protocolError(j, "answered a forward with \(reply.kind)")
            }
        }
        throw ClusterError("the cluster has no workers", class: .internalError)
    }

    /// One pass along `route`, chained: the tokens go to the first stage with the URLs of the
    /// others, and the readout comes back from the last. The wait listens on every worker of
    /// the route, so any of them failing, disconnecting or going silent ends it at once.
    private func chainedPass(
        route: [Int], epochs: [Int], _ batch: [SequenceForward], tokens: [Int], step: UInt32
    ) async throws -> [Readout] {
        let current = lock.withLock { route.map { state[$0].down ? nil : state[$0].epoch } }
        for (i, j) in route.enumerated() where current[i] != epochs[i] || !links[j].transport.isConnected {
            throw ClusterError("worker \(j + 1) at \(workers[j].url) was lost during the request", workerLost: true)
        }
        lock.withLock { route.forEach { state[$0].inFlight += 1 } }
        defer { lock.withLock { route.forEach { state[$0].inFlight -= 1 } } }
        let chained = ChainedForward(
            route: route.dropFirst().map { workers[$0].stageURL! }, forward: ForwardRequest(batch: batch, input: .tokens(tokens)))
        let (j, reply) = try await exchange(route, .chainedForward(chained), step: step)
        guard case .readout(let readout) = reply, j == route.last else {
            throw protocolError(j, "answered a chained forward with \(reply.kind)")
        }
        return try check(readout, from: j, answering: batch)
    }

    /// The readouts of `batch` in its order, each checked against what its sequence asked.
    private func check(_ readout: ReadoutReply, from j: Int, answering batch: [SequenceForward]) throws -> [Readout] {
        guard readout.sequences.count == batch.count else {
            throw protocolError(j, "returned \(readout.sequences.count) readouts for a batch of \(batch.count)")
        }
        let byID = Dictionary(readout.sequences.map { ($0.sequenceID, $0.readout) }, uniquingKeysWith: { a, _ in a })
        return try batch.map {
            guard let r = byID[$0.sequenceID] else {
                throw protocolError(j, "returned no readout for sequence \($0.sequenceID)")
            }
            if let problem = r.problem(answering: $0, vocabulary: config.embeddingSize) {
                throw protocolError(j, "sent a malformed readout for sequence \($0.sequenceID): \(problem)")
            }
            return r
        }
    }

    /// A reply that breaks the protocol: fails this request, naming the worker.
    private func protocolError(_ j: Int, _ what: String) -> ClusterError {
        ClusterError("worker \(j + 1) at \(workers[j].url) \(what)", class: .internalError)
    }

    public func release(_ sequenceID: UInt64) async {
        let holders = lock.withLock { () -> Set<Int> in
            guard let entry = sequences.removeValue(forKey: sequenceID) else { return [] }
            entry.route.forEach { state[$0].routed -= 1 }
            return entry.holders
        }
        let usable = usableWorkers()
        await withTaskGroup(of: Void.self) { group in
            for j in holders.sorted() where usable[j] {
                group.addTask { [self] in
                    _ = try? await exchange(j, .releaseCache([sequenceID]), step: 0, sendTimeout: 0.5, replyTimeout: 1)
                }
            }
        }
    }

    // MARK: Handshakes and heartbeats

    private func ensureAssigned(_ j: Int) async throws {
        let transport = links[j].transport
        if transport.isConnected && lock.withLock({ state[j].assignedConnection }) == transport.connectionCount { return }
        if !transport.isConnected && lock.withLock({ state[j].epoch }) > 0 {
            // It was serving and went away: fail now rather than wait for a send timeout (a
            // worker never assigned yet may still be dialling: the handshake waits for it).
            throw ClusterError("worker \(j + 1) at \(workers[j].url) is disconnected", workerLost: true)
        }
        // One handshake per worker at a time: concurrent forwards wait for the same one (a
        // second assignment would reset the worker's caches under another request).
        try await assignments[j].run { [self] in
            if transport.isConnected && lock.withLock({ state[j].assignedConnection }) == transport.connectionCount { return }
            try await handshake(j)
        }
    }

    /// Each side proves it holds the same model and cluster secret without sending either:
    /// `hello` with the coordinator's nonce, answered by the worker's nonce and proof;
    /// `shard_assignment` with the coordinator's proof over both nonces, answered by `hello`.
    private func handshake(_ j: Int) async throws {
        let worker = workers[j]
        let challenge = IdentityProof.nonce()
        let refused = ClusterError(
            "worker \(j + 1) at \(worker.url) could not prove it holds model \(hex(fingerprint)) and the cluster secret "
                + "(another model, another secret, or not an l2pd worker)",
            class: .internalError)
        let connection = links[j].transport.connectionCount
        let greeting = Hello(role: .coordinator, modelFingerprint: 0, nonce: challenge, name: "coordinator")
        guard case .hello(let hello) = try await exchange(j, .hello(greeting), step: 0), hello.nonce != 0,
            hello.modelFingerprint
                == IdentityProof.worker(fingerprint: fingerprint, challenge: challenge, nonce: hello.nonce, secret: secret)
        else { throw refused }
        let assignment = ShardAssignment(
            modelFingerprint: IdentityProof.coordinator(fingerprint: fingerprint, challenge: challenge, nonce: hello.nonce, secret: secret),
            totalLayers: config.layers, layers: worker.layers, nextStageURL: nextStageURL(after: j))
        guard case .hello(let accepted) = try await exchange(j, .shardAssignment(assignment), step: 0),
            accepted.modelFingerprint == hello.modelFingerprint
        else { throw ClusterError("worker \(worker.url) did not accept its layers", class: .internalError) }
        lock.withLock {
            state[j].assignedConnection = connection
            state[j].epoch += 1
            state[j].down = false
        }
    }

    /// The first worker of the next stage (informational in relay mode; empty on the last).
    private func nextStageURL(after j: Int) -> String {
        guard let stage = stages.firstIndex(where: { $0.contains(j) }), stage + 1 < stages.count else { return "" }
        return workers[stages[stage + 1][0]].url
    }

    /// Pings every assigned (or down) worker that has no ping outstanding. A worker silent for
    /// the heartbeat limit is marked down and its waits fail as lost; one that answers again is
    /// up, and is assigned afresh before it serves (its caches are stale by then).
    private func sendHeartbeats() {
        let limit = tolerance.silenceLimit
        let connections = links.map { ($0.transport.isConnected, $0.transport.connectionCount) }
        let due = lock.withLock {
            workers.indices.filter { j in
                let due =
                    connections[j].0 && !state[j].pinging && (state[j].assignedConnection == connections[j].1 || state[j].down)
                if due { state[j].pinging = true }
                return due
            }
        }
        for j in due {
            Task.detached { [self] in
                let nonce = UInt64.random(in: 1 ... .max)
                let answered: Bool
                do {
                    let reply = try await exchange(j, .ping(nonce: nonce), step: 0, sendTimeout: limit, replyTimeout: limit)
                    if case .pong(nonce, let weights, let cache) = reply {
                        answered = true
                        lock.withLock { state[j].held = (weights, cache) }
                    } else {
                        answered = false
                    }
                } catch let error as ClusterError where error.errorClass == .timeout {
                    answered = false
                } catch {
                    // Disconnected or closed: the connection events tell that story.
                    lock.withLock { state[j].pinging = false }
                    return
                }
                let changed = lock.withLock { () -> Bool in
                    state[j].pinging = false
                    guard state[j].down != !answered else { return false }
                    state[j].down = !answered
                    if !answered {
                        state[j].assignedConnection = -1
                        faults.lostWorkers += 1
                    }
                    return true
                }
                guard changed else { return }
                if answered {
                    log("worker \(j + 1) at \(workers[j].url) answers again")
                } else {
                    log("worker \(j + 1) at \(workers[j].url) is down: no heartbeat answer within \(limit) s")
                    links[j].failAll(
                        ClusterError(
                            "worker \(j + 1) at \(workers[j].url) stopped answering (no heartbeat within \(limit) s)", workerLost: true),
                        onlyWatching: false)
                }
            }
        }
    }

    /// One frame to worker `j` and its reply; `error` frames become `ClusterError`s naming the
    /// worker. `stage`: the stage a counted forward ran on (nil: not counted).
    private func exchange(
        _ j: Int, _ message: Message, step: UInt32, stage: Int? = nil, sendTimeout: Double = 2, replyTimeout: Double? = nil,
        watching: Bool = false
    ) async throws -> Message {
        let id = newRequestID()
        let bytes = try Frame(requestID: id, step: step, message: message).encode()
        let started = DispatchTime.now().uptimeNanoseconds
        let reply: [UInt8]
        do {
            reply = try await links[j].exchange(
                bytes, key: id, sendTimeout: sendTimeout, replyTimeout: replyTimeout ?? timeout, watching: watching)
        } catch let error as TransportError {
            throw clusterError(error, j, sendTimeout: sendTimeout, replyTimeout: replyTimeout ?? timeout)
        }
        if let stage {
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            lock.withLock {
                wire.bytesSent += bytes.count
                wire.bytesReceived += reply.count
                wire.transits += 2
                wire.roundTripSeconds += elapsed
                if wire.stageSeconds.count < stages.count { wire.stageSeconds = Array(repeating: 0, count: stages.count) }
                wire.stageSeconds[stage] += elapsed
                if stage == stages.count - 1 { wire.forwards += 1 }
            }
        }
        return try decodeReply(reply, from: j)
    }

    /// A chained pass's one frame, sent to `route[0]`, and its answer, from whichever worker of
    /// the route sent it (the last, unless one failed); counted as one forward.
    private func exchange(_ route: [Int], _ message: Message, step: UInt32, sendTimeout: Double = 2) async throws -> (Int, Message) {
        let id = newRequestID()
        let bytes = try Frame(requestID: id, step: step, message: message).encode()
        let started = DispatchTime.now().uptimeNanoseconds
        let answer = Promise<(Int, [UInt8])>()
        for j in route {
            links[j].expect(key: id, replyTimeout: timeout, watching: true) { result in
                answer.fulfil(
                    result.map { (j, $0) }.mapError { error in
                        (error as? TransportError).map { self.clusterError($0, j, sendTimeout: sendTimeout, replyTimeout: self.timeout) }
                            ?? error
                    })
            }
        }
        defer { for j in route { links[j].forget(key: id) } }
        links[route[0]].transport.send(bytes, timeout: sendTimeout) { [self] error in
            if let error {
                answer.fulfil(
                    .failure(
                        (error as? TransportError).map { clusterError($0, route[0], sendTimeout: sendTimeout, replyTimeout: timeout) }
                            ?? error))
            }
        }
        let (j, reply) = try await answer.value()
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        lock.withLock {
            wire.bytesSent += bytes.count
            wire.bytesReceived += reply.count
            wire.transits += route.count + 1
            wire.roundTripSeconds += elapsed
            wire.forwards += 1
        }
        return (j, try decodeReply(reply, from: j))
    }

    private func newRequestID() -> UInt64 {
        lock.withLock { () -> UInt64 in
            defer { nextRequestID += 1 }
            return nextRequestID
        }
    }

    /// A transport failure on worker `j`'s link, as the request's error.
    private func clusterError(_ error: TransportError, _ j: Int, sendTimeout: Double, replyTimeout: Double) -> ClusterError {
        let what: String
        switch error.kind {
        case .unreachable: what = "is unreachable (no connection within \(sendTimeout) s)"
        case .peerLost: what = "disconnected during the request"
        case .timeout: what = "did not answer within \(replyTimeout) s"
        case .closed: what = "is no longer served (the pipeline was closed)"
        case .nng, .tls: what = "failed: \(error.detail)"
        }
        let lost = error.kind == .unreachable || error.kind == .peerLost
        return ClusterError(
            "worker \(j + 1) at \(workers[j].url) \(what)", class: error.kind == .timeout ? .timeout : .unavailable, workerLost: lost)
    }

    /// The message of worker `j`'s reply; an `error` frame becomes a `ClusterError` naming the
    /// worker (a next stage it could not reach counts as a lost worker, so the pass runs again).
    private func decodeReply(_ reply: [UInt8], from j: Int) throws -> Message {
        let frame: Frame
        do { frame = try Frame.decode(reply) } catch {
            throw protocolError(j, "sent an undecodable frame: \(error)")
        }
        if case .error(let report) = frame.message {
            let text =
                "worker \(j + 1) at \(workers[j].url) reported \(report.knownCode?.description ?? "error \(report.code)"): \(report.text)"
            if report.knownCode == .nextStageUnreachable { throw ClusterError(text, class: .unavailable, workerLost: true) }
            if report.knownCode == .chainUnsupported { throw ChainUnsupported(reason: text) }
            throw ClusterError(text, class: .internalError)
        }
        return frame.message
    }
}

/// A worker that cannot send a chained pass on (it has no CA to verify a TLS stage, say).
struct ChainUnsupported: Error {
    let reason: String
}

/// How a forward pass travels between the stages of a cluster.
public enum StageLinks: String, Sendable, Codable, CaseIterable {
    /// Each worker sends its hidden states to the next stage; the last answers the coordinator.
    case chained
    /// Each worker answers the coordinator, which sends the hidden states on.
    case relay
}
