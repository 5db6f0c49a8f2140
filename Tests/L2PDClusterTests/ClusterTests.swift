import Foundation
import L2PDDecoding
import L2PDDefaultModel
import L2PDEngine
import L2PDEvaluation
import L2PDFilter
import L2PDModel
import L2PDProtocol
import L2PDStageIO
import L2PDTasks
import L2PDTokenizer
import L2PDTransport
import Testing

@testable import L2PDCluster

/// Real `l2pd worker` processes on loopback (`LocalWorkers`), started from the executable
/// built next to the tests, serving the default model unless told otherwise.
final class WorkerProcesses: Sendable {
    let local: LocalWorkers
    let model: URL

    init(count: Int, model: URL? = nil, arguments: [String] = [], scheme: String = "tcp") throws {
        let model = try model ?? #require(DefaultModel.directory)
        self.model = model
        local = try LocalWorkers(
            count: count, executable: try Self.executable, arguments: ["--model", model.path, "--threads", "1"] + arguments,
            scheme: scheme)
    }

    var urls: [String] { local.urls }
    func kill(_ i: Int) { local.kill(i) }
    func restart(_ i: Int) throws { try local.restart(i) }

    static var executable: URL {
        get throws {
            let candidates = [
                URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("l2pd"),
                Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("l2pd"),
                Bundle.main.bundleURL.appendingPathComponent("l2pd"),
            ]
            return try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }, "build l2pd first")
        }
    }
}

/// The next frame on `transport`, or nil when none arrives within `seconds`.
func receive(_ transport: any FrameTransport, within seconds: Double) async throws -> [UInt8]? {
    try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
        group.addTask { try await transport.receive() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            return nil
        }
        defer { group.cancelAll() }
        return try await group.next() ?? nil
    }
}

func connectedPipeline(
    _ workers: WorkerProcesses, config: ModelConfig, timeout: Double = 60, faultTolerance: FaultTolerance = FaultTolerance(),
    clusterSecret: String? = nil, tls: TLSConfiguration? = nil, links: StageLinks = .chained
) async throws -> NetworkPipeline {
    let endpoints = zip(workers.urls, LayerPlan.even(layers: config.layers, stages: workers.urls.count)).map {
        WorkerEndpoint(url: $0, layers: $1)
    }
    let pipeline = try NetworkPipeline(
        config: config, fingerprint: try ModelFingerprint.of(directory: workers.model), workers: endpoints, timeout: timeout,
        faultTolerance: faultTolerance, clusterSecret: clusterSecret, tls: tls, links: links)
    for attempt in 0..<100 {
        do {
            try await pipeline.connect()
            return pipeline
        } catch {
            if attempt == 99 { throw error }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
    return pipeline
}

/// The cluster tests start real processes and time failures: one at a time.
@Suite(.serialized) struct ClusterTests {

    /// Every policy and cache mode: a 2- and a 4-worker cluster commit exactly the tokens that
    /// single-process mode commits, on 20 prompts of the evaluation split.
    @Test(arguments: [2, 4])
    func clusterOutputIsTokenIdenticalToSingleProcess(workerCount: Int) async throws {
        let directory = try #require(DefaultModel.directory)
        let bundle = try ModelBundle(directory: directory)
        let workers = try WorkerProcesses(count: workerCount)
        let network = try await connectedPipeline(workers, config: bundle.checkpoint.config)
        defer { network.close() }
        let local = TextGenerator(tokenizer: bundle.tokenizer, pipeline: try InProcessPipeline(checkpoint: bundle.checkpoint))
        let cluster = TextGenerator(tokenizer: bundle.tokenizer, pipeline: network)
        let filter = try DefaultModel.filter.map { try FilterNetwork(contentsOf: $0) }
        let policies = ["baseline", "threshold", "factor+eotp", "egp"] + (filter == nil ? [] : ["learn2pd+eotp"])
        let prompts = TaskSuite.examples(split: .eval, count: 20, seed: 4).map(\.prompt)
        var compared = 0
        for policy in policies {
            for cache in CacheMode.allCases {
                var request = DecodingParameters()
                request.policy = policy
                request.cache = cache.rawValue
                request.genLength = 64
                request.blockLength = policy.hasPrefix("learn2pd") ? filter!.blockLength : 16
                if request.blockLength! > 16 { request.genLength = 2 * request.blockLength! }
                let options = try request.options(maxSequenceLength: 2048, filter: filter)
                for (i, prompt) in prompts.enumerated() {
                    let a = try await local.generate(prompt, options: options, sequenceID: UInt64(i + 1))
                    let b = try await cluster.generate(prompt, options: options, sequenceID: UInt64(i + 1))
                    #expect(a.tokens == b.tokens, "\(policy) cache=\(cache) prompt \(i)")
                    #expect(a.statistics.nfe == b.statistics.nfe && a.statistics.positions == b.statistics.positions)
                    compared += 1
                }
            }
        }
        #expect(compared == policies.count * 3 * prompts.count)
        let wire = network.statistics
        #expect(wire.forwards > 0)
        // Chained: tokens to the first stage, the readout back from the last, nothing between.
        #expect(network.linkMode == .chained && wire.transits == (workerCount + 1) * wire.forwards)
    }

    /// Relayed and chained passes commit the tokens of one process; chained ones cross one link
    /// fewer per forward and leave the hidden states out of the coordinator's traffic.
    @Test func chainedPassesKeepHiddenStatesOffTheCoordinator() async throws {
        let directory = try #require(DefaultModel.directory)
        let bundle = try ModelBundle(directory: directory)
        let local = TextGenerator(tokenizer: bundle.tokenizer, pipeline: try InProcessPipeline(checkpoint: bundle.checkpoint))
        var request = DecodingParameters()
        request.policy = "threshold+eotp"
        request.cache = "dual"
        request.genLength = 64
        request.blockLength = 16
        let options = try request.options(maxSequenceLength: 2048, filter: nil)
        let prompts = TaskSuite.examples(split: .eval, count: 4, seed: 9).map(\.prompt)
        var statistics: [StageLinks: WireStatistics] = [:]
        for links in [StageLinks.relay, .chained] {
            let workers = try WorkerProcesses(count: 2)
            let network = try await connectedPipeline(workers, config: bundle.checkpoint.config, links: links)
            defer { network.close() }
            let cluster = TextGenerator(tokenizer: bundle.tokenizer, pipeline: network)
            for (i, prompt) in prompts.enumerated() {
                let a = try await local.generate(prompt, options: options, sequenceID: UInt64(i + 1))
                let b = try await cluster.generate(prompt, options: options, sequenceID: UInt64(i + 1))
                #expect(a.tokens == b.tokens, "\(links) prompt \(i)")
            }
            statistics[links] = network.statistics
        }
        let relay = try #require(statistics[.relay])
        let chained = try #require(statistics[.chained])
        #expect(relay.forwards == chained.forwards && chained.forwards > 0)
        #expect(relay.transits == 4 * relay.forwards && chained.transits == 3 * chained.forwards)
        // A relayed forward carries each stage's hidden states twice (at least 16 rows of
        // d_model floats); a chained one carries tokens and a readout only.
        let hiddenBytes = Double(2 * 16 * bundle.checkpoint.config.dModel * 4)
        #expect(relay.bytesPerForward > hiddenBytes && chained.bytesPerForward < hiddenBytes / 4)
    }

    /// Without a retry window, a killed worker fails the request in flight at once.
    @Test func aKilledWorkerFailsTheRequestQuicklyAndARestartedOneServesAgain() async throws {
        let bundle = try ModelBundle(directory: try #require(DefaultModel.directory))
        let workers = try WorkerProcesses(count: 2)
        let network = try await connectedPipeline(
            workers, config: bundle.checkpoint.config, faultTolerance: FaultTolerance(retryWindow: 0))
        defer { network.close() }
        let cluster = TextGenerator(tokenizer: bundle.tokenizer, pipeline: network)
        var options = GenerationOptions()
        options.genLength = 1024  // long enough to still be running when the worker dies
        options.blockLength = 32

        let killer = Task {
            try await Task.sleep(for: .milliseconds(300))
            try await offPool { workers.kill(1) }
            return ContinuousClock.now
        }
        var failedAt: ContinuousClock.Instant? = nil
        var message = ""
        do {
            _ = try await cluster.generate("Copy the digits 12345.", options: options, sequenceID: 1)
        } catch {
            failedAt = ContinuousClock.now
            message = String(describing: error)
        }
        let killedAt = try await killer.value
        let failed = try #require(failedAt, "the request should fail when a worker dies")
        // At once, not after the pass's 60 s timeout (10 s leaves room for a loaded machine).
        #expect(failed - killedAt < .seconds(10), "\(message)")
        #expect(message.contains(workers.urls[1]))

        try workers.restart(1)
        options.genLength = 64
        options.blockLength = 16
        var answered = false
        for _ in 0..<50 where !answered {
            do {
                _ = try await cluster.generate("What is 2 + 2?", options: options, sequenceID: 2)
                answered = true
            } catch {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        #expect(answered)
    }

    /// A worker killed mid-request and restarted within the retry window: the request waits,
    /// its caches are rebuilt on the new process, and it answers exactly what one process does.
    @Test func aKilledAndRestartedWorkerLosesNoRequest() async throws {
        let bundle = try ModelBundle(directory: try #require(DefaultModel.directory))
        let workers = try WorkerProcesses(count: 2)
        let network = try await connectedPipeline(workers, config: bundle.checkpoint.config)
        defer { network.close() }
        var options = GenerationOptions()
        options.genLength = 64
        options.blockLength = 16
        options.steps = 64
        options.cache = .dual
        let prompt = "Copy the digits 12345."
        let local = TextGenerator(tokenizer: bundle.tokenizer, pipeline: try InProcessPipeline(checkpoint: bundle.checkpoint))
        let expected = try await local.generate(prompt, options: options, sequenceID: 1).tokens
        let restarted = Promise<Void>()
        let cluster = TextGenerator(tokenizer: bundle.tokenizer, pipeline: network)
        let answer = try await cluster.generate(prompt, options: options, sequenceID: 1) { event in
            guard event.step == 5 else { return }
            // Off the decoder's task: kill -9 now, start again half a second later.
            DispatchQueue.global().async {
                kill(workers.local.process(1).processIdentifier, SIGKILL)
                workers.local.process(1).waitUntilExit()
                Thread.sleep(forTimeInterval: 0.5)
                try? workers.restart(1)
                restarted.fulfil(.success(()))
            }
        }
        try await restarted.value()
        #expect(answer.tokens == expected)
        #expect(network.faultCounters.retriedPasses >= 1)
        #expect(network.faultCounters.replayedRefreshes >= 1)
    }

    /// With a cluster secret, neither side can be impersonated: a worker refuses a coordinator
    /// that cannot prove the secret (and answers nothing but the handshake before), and a
    /// coordinator refuses a worker that cannot.
    @Test func theClusterSecretIsProvenBothWays() async throws {
        let directory = try #require(DefaultModel.directory)
        let config = try ModelConfig.load(from: directory.appendingPathComponent("config.json"))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("l2pd-secret-\(UUID().uuidString).json")
        try #"{"workers": [{"url": "tcp://127.0.0.1:1"}], "secret": "correct horse"}"#.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let guarded = try WorkerProcesses(count: 1, arguments: ["--cluster", file.path])
        func connectError(_ workers: WorkerProcesses, secret: String?) async throws -> String {
            let pipeline = try NetworkPipeline(
                config: config, fingerprint: try ModelFingerprint.of(directory: directory),
                workers: [WorkerEndpoint(url: workers.urls[0], layers: 0..<config.layers)], timeout: 10, clusterSecret: secret)
            defer { pipeline.close() }
            for _ in 0..<50 {
                do { try await pipeline.connect() } catch {
                    let message = String(describing: error)
                    // Not up yet, or still paired with the previous coordinator (a worker serves
                    // one at a time, and on a loaded machine it notices a closed peer late): retry.
                    if !message.contains("unreachable") && !message.contains("disconnected") { return message }
                    try await Task.sleep(for: .milliseconds(100))
                    continue
                }
                return "connected"
            }
            return "unreachable"
        }
        for secret in [nil, "wrong horse"] {
            let message = try await connectError(guarded, secret: secret)
            #expect(message.contains("could not prove it holds model"), "\(message)")
            #expect(message.contains("cluster secret"), "\(message)")
        }
        let accepted = try await connectError(guarded, secret: "correct horse")
        #expect(accepted == "connected", "\(accepted)")

        // A raw peer: refused before the handshake, and with a forged assignment.
        let socket = try PairSocket.dial(guarded.urls[0], maxMessageBytes: 1 << 24)
        defer { socket.close() }
        /// Sends `message` and returns the reply to it (late replies to earlier attempts are skipped).
        func ask(_ message: Message, id: UInt64) async throws -> Message {
            try await socket.send(try Frame(requestID: id, message: message).encode(), timeout: 5)
            while true {
                let frame = try Frame.decode(try #require(try await receive(socket, within: 30)))
                if frame.requestID == id { return frame.message }
            }
        }
        let forward = Message.forward(
            ForwardRequest(batch: [SequenceForward(sequenceID: 1, length: 4, readPositions: [3])], input: .tokens([1, 2, 3, 4])))
        // The worker serves one peer at a time: until it has noticed that the last coordinator
        // closed (late, on a loaded machine), frames to it are lost. Ask again until it answers.
        var firstReply: Message?
        for attempt in 0..<30 where firstReply == nil {
            try await socket.send(try Frame(requestID: 100 + UInt64(attempt), message: forward).encode(), timeout: 5)
            firstReply = try await receive(socket, within: 2).map { try Frame.decode($0).message }
        }
        guard case .error(let early) = try #require(firstReply, "the worker never answered a raw peer") else {
            throw ClusterError("a forward was served")
        }
        #expect(early.knownCode == .notAuthenticated)
        guard case .hello = try await ask(.hello(Hello(role: .coordinator, modelFingerprint: 0, nonce: 9)), id: 2) else {
            throw ClusterError("no hello back")
        }
        let forged = ShardAssignment(modelFingerprint: 12345, totalLayers: config.layers, layers: 0..<config.layers, nextStageURL: "")
        guard case .error(let refused) = try await ask(.shardAssignment(forged), id: 3) else {
            throw ClusterError("a forged assignment was taken")
        }
        #expect(refused.knownCode == .fingerprintMismatch)
        guard case .error(let still) = try await ask(forward, id: 4) else { throw ClusterError("a forward was served") }
        #expect(still.knownCode == .notAuthenticated)
        socket.close()

        // A coordinator with a secret refuses a worker without it.
        let open = try WorkerProcesses(count: 1)
        let message = try await connectError(open, secret: "correct horse")
        #expect(message.contains("could not prove it holds model"), "\(message)")
    }

    @Test func aWorkerWithAnotherModelIsRefusedByName() async throws {
        let defaultModel = try #require(DefaultModel.directory)
        let config = try ModelConfig.load(from: defaultModel.appendingPathComponent("config.json"))
        let other = try WorkerProcesses(count: 1, model: ModelFixture.smallModel)
        let pipeline = try NetworkPipeline(
            config: config, fingerprint: try ModelFingerprint.of(directory: defaultModel),
            workers: [WorkerEndpoint(url: other.urls[0], layers: 0..<config.layers)], timeout: 10)
        defer { pipeline.close() }
        var message = ""
        for _ in 0..<50 {
            do {
                try await pipeline.connect()
            } catch {
                message = String(describing: error)
                if !message.contains("unreachable") { break }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        #expect(message.contains(other.urls[0]))
        #expect(message.contains("could not prove it holds model"), "\(message)")
    }

    /// Random and mutated frames never stop a worker: each gets an error frame (or is dropped),
    /// and afterwards the worker still answers a ping.
    @Test func garbageFramesAreAnsweredWithErrorsAndNeverCrashAWorker() async throws {
        let workers = try WorkerProcesses(count: 1)
        let socket = try PairSocket.dial(workers.urls[0], maxMessageBytes: 1 << 24)
        defer { socket.close() }
        let valid = try Frame(requestID: 9, step: 1, message: .ping(nonce: 77)).encode()
        let forward = try Frame(
            requestID: 10, step: 0,
            message: .forward(
                ForwardRequest(batch: [SequenceForward(sequenceID: 1, length: 4, readPositions: [0, 1])], input: .tokens([1, 2, 3, 4])))
        ).encode()
        var random = SystemRandomNumberGenerator()
        var errors = 0
        for i in 0..<3000 {
            var bytes: [UInt8]
            switch i % 4 {
            case 0: bytes = (0..<Int.random(in: 0..<200, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            case 1:
                bytes = i % 8 == 1 ? valid : forward
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
                }
            case 2: bytes = Array(forward.prefix(Int.random(in: 0..<forward.count, using: &random)))
            default:
                bytes = forward + (0..<Int.random(in: 1...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            }
            try await socket.send(bytes, timeout: 5)
            if let reply = try await receive(socket, within: 0.2), let frame = try? Frame.decode(reply), case .error = frame.message {
                errors += 1
            }
        }
        while try await receive(socket, within: 0.3) != nil {}
        #expect(errors > 2000)
        // Still alive, and still answering nothing but the handshake to a peer that has not
        // proven itself.
        try await socket.send(valid, timeout: 5)
        let reply = try #require(try await receive(socket, within: 5))
        let refusal = try Frame.decode(reply)
        #expect(refusal.requestID == 9)
        guard case .error(let report) = refusal.message else { throw ClusterError("expected an error frame, got \(refusal.message.kind)") }
        #expect(report.knownCode == .notAuthenticated)
        try await socket.send(
            try Frame(requestID: 11, message: .hello(Hello(role: .coordinator, modelFingerprint: 0, nonce: 5))).encode(), timeout: 5)
        let hello = try Frame.decode(try #require(try await receive(socket, within: 5)))
        guard case .hello(let answer) = hello.message else { throw ClusterError("expected hello, got \(hello.message.kind)") }
        #expect(answer.role == .worker && answer.nonce != 0 && answer.modelFingerprint != 0)
    }

    /// A coordinator serving on a real socket: concurrent clients get exactly the tokens of
    /// single-process runs, and malformed or random requests get error replies without
    /// disturbing the service.
    @Test func aCoordinatorServesConcurrentClientsIdenticallyAndSurvivesGarbage() async throws {
        let directory = try #require(DefaultModel.directory)
        let bundle = try ModelBundle(directory: directory)
        let workers = try WorkerProcesses(count: 2)
        let endpoints = zip(workers.urls, LayerPlan.even(layers: bundle.checkpoint.config.layers, stages: 2)).map {
            WorkerEndpoint(url: $0, layers: $1)
        }
        let coordinator = try Coordinator(
            modelDirectory: directory, workers: endpoints, filter: nil,
            limits: AdmissionLimits(concurrent: 4, queued: 8, batchesInFlight: 1))
        for attempt in 0..<100 {
            do {
                try await coordinator.connect()
                break
            } catch {
                if attempt == 99 { throw error }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let url = "tcp://127.0.0.1:\(18_000 + Int.random(in: 0..<2_000))"
        let server = try ReplyServer(listening: url)
        let serving = Task { try await coordinator.serve(on: server) }
        defer {
            server.close()
            serving.cancel()
        }

        let local = TextGenerator(tokenizer: bundle.tokenizer, pipeline: try InProcessPipeline(checkpoint: bundle.checkpoint))
        let prompts = TaskSuite.examples(split: .eval, count: 12, seed: 8).map(\.prompt)
        var template = GenerationRequest(prompt: "")
        template.parameters.policy = "threshold"
        template.parameters.cache = "dual"
        template.parameters.genLength = 64
        template.parameters.blockLength = 16
        let options = try template.parameters.options(maxSequenceLength: 2048, filter: nil)
        var expected: [[Int]] = []
        for (i, prompt) in prompts.enumerated() {
            expected.append(try await local.generate(prompt, options: options, sequenceID: UInt64(i + 1)).tokens)
        }
        let requests = prompts.map { prompt -> GenerationRequest in
            var r = template
            r.prompt = prompt
            return r
        }
        let replies = try await withThrowingTaskGroup(of: (Int, GenerationReply).self) { group in
            for (i, request) in requests.enumerated() {
                group.addTask { (i, try await CoordinatorClient(url: url).generate(request, timeout: Double(slowRequestSeconds))) }
            }
            var out = [GenerationReply?](repeating: nil, count: requests.count)
            for try await (i, reply) in group { out[i] = reply }
            return out
        }
        for i in prompts.indices { #expect(replies[i]?.tokens == expected[i], "prompt \(i)") }
        let batched = await coordinator.statistics
        #expect(batched.batchedSequences > batched.batches, "concurrent forwards should have shared batches")

        var random = SystemRandomNumberGenerator()
        var refusals: [String] = []
        let socket = try RequestSocket(dialing: url)
        let valid = Array(try JSONEncoder().encode(requests[0]))
        for i in 0..<200 {
            var bytes: [UInt8]
            switch i % 3 {
            case 0: bytes = (0..<Int.random(in: 0..<100, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            case 1:
                bytes = valid
                bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            default: bytes = Array(#"{"prompt": "What is 1 + 1?", "cache": "sideways"}"#.utf8)
            }
            let reply = try await socket.request(bytes, timeout: Double(slowRequestSeconds))
            if let object = try? JSONDecoder().decode([String: String].self, from: Data(reply)), let kind = object["kind"] {
                refusals.append(kind)
            }
        }
        // Every request got an answer; the undecodable ones an error that says so.
        #expect(refusals.count >= 130)
        #expect(refusals.allSatisfy { $0 == ErrorClass.invalidRequest.rawValue })
        let after = try await CoordinatorClient(url: url).generate(requests[1], timeout: Double(slowRequestSeconds))
        #expect(after.tokens == expected[1])
        let counters = await coordinator.statistics
        #expect(counters.served >= prompts.count + 1)
        #expect(counters.running == 0 && counters.waiting == 0)

        // The same service over the OpenAI-shaped HTTP API.
        let http = try HTTPServer(url: "http://127.0.0.1:0")
        let port = Int(http.port)
        try HTTPAPI(coordinator: coordinator, modelName: "default").install(on: http)
        try http.start()
        defer { http.stop() }
        let chat =
            #"{"messages": [{"role": "user", "content": "\#(prompts[2])"}], "policy": "threshold", "cache": "dual", "gen_length": 64, "block_length": 16}"#
        let (status, body) = try await offPool { try RawHTTP.request(port: port, "POST", "/v1/chat/completions", body: chat) }
        #expect(status == 200, "\(body)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        let choice = try #require((object["choices"] as? [[String: Any]])?.first)
        let content = try #require((choice["message"] as? [String: Any])?["content"] as? String)
        #expect(content == replies[2]?.text)
        let usage = try #require(object["usage"] as? [String: Int])
        #expect(usage["completion_tokens"] == expected[2].count)
        for bad in [
            #"{"messages": []}"#, #"{"prompt": 7}"#, "not json", #"{"messages": [{"role": "user", "content": "hi"}], "cache": "sideways"}"#,
            #"{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}"#,
        ] {
            let path = bad.contains("prompt") ? "/v1/completions" : "/v1/chat/completions"
            let (code, text) = try await offPool { try RawHTTP.request(port: port, "POST", path, body: bad) }
            #expect(code == 400, "\(bad) -> \(text)")
            #expect(text.contains("invalid_request_error"))
        }
        // Streaming and the load-test client need answers with text: two prompts the model answers.
        let answered = prompts.indices.filter { !(replies[$0]?.text.isEmpty ?? true) }
        try #require(answered.count >= 2, "the model answers at least two of \(prompts.count) prompts with text")
        let (streamedIndex, clientIndex) = (answered[0], answered[1])
        // Streaming: server-sent events whose deltas add up to the same answer, then [DONE].
        let streamed =
            #"{"prompt": "\#(ChatFormat.llaDAInstruct(user: prompts[streamedIndex]).replacingOccurrences(of: "\n", with: "\\n"))", "stream": true, "policy": "threshold", "cache": "dual", "gen_length": 64, "block_length": 16}"#
        let (streamStatus, events) = try await offPool { try RawHTTP.request(port: port, "POST", "/v1/completions", body: streamed) }
        #expect(streamStatus == 200)
        let payloads = events.components(separatedBy: "\n\n").filter { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
        #expect(payloads.last == "[DONE]", "\(events)")
        var streamedText = ""
        var finishReasons: [String] = []
        for payload in payloads.dropLast() {
            let chunk = try #require(try JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any], "\(payload)")
            let choice = try #require((chunk["choices"] as? [[String: Any]])?.first)
            streamedText += choice["text"] as? String ?? ""
            if let reason = choice["finish_reason"] as? String { finishReasons.append(reason) }
        }
        #expect(streamedText == replies[streamedIndex]?.text)
        #expect(finishReasons == ["stop"])
        #expect(payloads.count >= 3, "at least one text chunk, the finish chunk and [DONE]")

        // The load-test client over HTTP: the same answer, and a first block before the end.
        let target = try HTTPClient.parse("http://127.0.0.1:\(port)")
        let viaHTTP = try await offPool {
            try HTTPCompletionClient.generate(requests[clientIndex], target: target, timeout: Double(slowRequestSeconds))
        }
        #expect(viaHTTP.reply.text == replies[clientIndex]?.text)
        #expect(viaHTTP.reply.nfe == replies[clientIndex]?.nfe)
        let firstBlock = try #require(viaHTTP.firstBlockSeconds)
        #expect(firstBlock > 0)
        let loadPrompts = TaskSuite.examples(split: .eval, count: 4, seed: 8).map { LoadTestPrompt(prompt: $0.prompt, example: $0) }
        let loadTemplate = template
        let load = await LoadTest.run(
            plan: LoadTestPlan(requests: 4, arrivals: .concurrency(2)), prompts: loadPrompts, template: loadTemplate
        ) { request in try await offPool { try HTTPCompletionClient.generate(request, target: target, timeout: Double(slowRequestSeconds)) }
        }
        #expect(load.ok == 4 && load.failed == 0)
        #expect(load.first_block_p50 != nil && load.first_block_p99! <= load.latency_p99)

        // A streaming client that hangs up after the first block cancels its decode: the
        // request ends as failed long before its 1024 one-token steps could have finished.
        let before = await coordinator.statistics
        let long = #"{"messages": [{"role": "user", "content": "Count from 1 to 90."}], "stream": true, "gen_length": 1024}"#
        try await offPool { try RawHTTP.hangUpAfterFirstEvent(port: port, "/v1/chat/completions", body: long) }
        var afterHangUp = await coordinator.statistics
        for _ in 0..<300 where afterHangUp.failed == before.failed {
            try await Task.sleep(for: .milliseconds(100))
            afterHangUp = await coordinator.statistics
        }
        #expect(afterHangUp.failed == before.failed + 1, "the abandoned request should have been cancelled")
        #expect(afterHangUp.running == 0)

        let (healthStatus, health) = try await offPool { try RawHTTP.request(port: port, "GET", "/health") }
        #expect(healthStatus == 200 && health.contains("\"ok\""))
        let (_, models) = try await offPool { try RawHTTP.request(port: port, "GET", "/v1/models") }
        #expect(models.contains("\"default\""))
        let (_, metrics) = try await offPool { try RawHTTP.request(port: port, "GET", "/metrics") }
        let served = await coordinator.statistics.served
        #expect(metrics.contains("l2pd_requests_total{outcome=\"ok\"} \(Double(served))"))
        // Chained passes: 3 transits per forward through 2 workers.
        let forwards = coordinator.pipeline.statistics.forwards
        #expect(forwards > 0 && metrics.contains("l2pd_wire_transits_total \(Double(3 * forwards))"))
        let (missing, _) = try await offPool { try RawHTTP.request(port: port, "GET", "/nowhere") }
        #expect(missing == 404)
    }

    @Test func clusterFilesAreValidated() throws {
        func load(_ json: String) throws -> ClusterDescription {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-\(UUID().uuidString).json")
            try json.write(to: url, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: url) }
            return try ClusterDescription.load(url)
        }
        let even = try load(#"{"workers": [{"url": "tcp://a:1"}, {"url": "tcp://b:2"}]}"#)
        #expect(try even.endpoints(layers: 4).map(\.layers) == [0..<2, 2..<4])
        let explicit = try load(
            #"{"model": "/m", "workers": [{"url": "tcp://a:1", "layers": [0, 3]}, {"url": "tcp://b:2", "layers": [3, 4]}]}"#)
        #expect(try explicit.endpoints(layers: 4).map(\.layers) == [0..<3, 3..<4])
        #expect(throws: ClusterError.self) { try explicit.endpoints(layers: 5) }
        #expect(throws: ClusterError.self) { try load(#"{"workers": []}"#) }
        #expect(throws: ClusterError.self) { try load(#"{"workers": [{"url": "x", "layers": [0, 2]}, {"url": "y"}]}"#) }
        #expect(throws: ClusterError.self) { try load("not json") }
        let gap = try load(#"{"workers": [{"url": "x", "layers": [0, 1]}, {"url": "y", "layers": [2, 4]}]}"#)
        #expect(throws: ClusterError.self) { try gap.endpoints(layers: 4) }
        // TLS: tls+tcp:// workers need a CA; a "tls" without such workers is a mistake; relative
        // paths are the cluster file's.
        #expect(throws: ClusterError.self) { try load(#"{"workers": [{"url": "tls+tcp://a:1"}]}"#) }
        #expect(throws: ClusterError.self) { try load(#"{"tls": {"ca": "ca.pem"}, "workers": [{"url": "tcp://a:1"}]}"#) }
        let tls = try load(#"{"tls": {"ca": "certs/ca.pem", "key": "/k.pem"}, "workers": [{"url": "tls+tcp://a:1"}]}"#)
        #expect(tls.tls?.ca == FileManager.default.temporaryDirectory.appendingPathComponent("certs/ca.pem").path)
        #expect(tls.tls?.key == "/k.pem" && tls.tls?.certificate == nil)
        // Passes are chained unless "links" says relay; a stage address is derived or given.
        #expect(even.links == .chained)
        #expect(try even.endpoints(layers: 4).map(\.stageURL) == ["tcp://a:101", "tcp://b:102"])
        let relayed = try load(#"{"links": "relay", "workers": [{"url": "tcp://a:1", "stage_url": "tcp://a:9000"}]}"#)
        #expect(relayed.links == .relay)
        #expect(try relayed.endpoints(layers: 4).first?.stageURL == "tcp://a:9000")
        for links in ["\"chain\"", "1", "\"\""] {
            #expect(throws: ClusterError.self) { try load("{\"links\": \(links), \"workers\": [{\"url\": \"tcp://a:1\"}]}") }
        }
        #expect(throws: ClusterError.self) { try load(#"{"workers": [{"url": "tcp://a:1", "stage_url": 7}]}"#) }
    }

}

/// Runs blocking socket and process calls on their own thread, off Swift's cooperative pool.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

enum ModelFixture {
    /// The random 3-layer model of the model tests: a different checkpoint than the default.
    static var smallModel: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("L2PDModelTests/Fixtures/tiny-llada")
    }
}

/// A minimal HTTP/1.1 client over a POSIX socket (the tests need no networking library).
/// How long a test waits for a request to a real process before calling it hung: ten times
/// what the slowest such request takes on a quiet 2-core machine, so a loaded or slow CI
/// machine still passes.
let slowRequestSeconds = 600

enum RawHTTP {
    /// Sends a POST, waits for the first server-sent event, then closes the connection.
    static func hangUpAfterFirstEvent(port: Int, _ path: String, body: String) throws {
        let fd = try connected(port: port)
        defer { close(fd) }
        try sendRequest(fd, "POST", path, body: body)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: received, as: UTF8.self).contains("data: ") {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw ClusterError("the stream ended before its first event") }
            received += buffer[0..<n]
        }
    }

    static func sendRequest(_ fd: Int32, _ method: String, _ path: String, body: String) throws {
        let payload = Array(body.utf8)
        let head =
            "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(payload.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + payload
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else {
            throw ClusterError("send failed")
        }
    }

    static func connected(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClusterError("socket failed") }
        // Long enough for the slowest request a test sends (8 baseline requests of 256 steps on
        // one thread) at a tenth of a quiet machine's speed; a server that hangs still fails.
        var timeout = timeval(tv_sec: slowRequestSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            close(fd)
            throw ClusterError("connect to port \(port) failed")
        }
        return fd
    }

    static func request(port: Int, _ method: String, _ path: String, body: String = "") throws -> (Int, String) {
        let payload = Array(body.utf8)
        let head =
            "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(payload.count)\r\nConnection: close\r\n\r\n"
        return try exchange(port: port, Array(head.utf8) + payload)
    }

    /// Sends `bytes` as they are (a request, well formed or not) and reads the response.
    static func exchange(port: Int, _ bytes: [UInt8]) throws -> (Int, String) {
        let fd = try connected(port: port)
        defer { close(fd) }
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }  // the server may answer (413) and close before reading everything
            sent += n
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += buffer[0..<n]
            if let text = String(bytes: response, encoding: .utf8), let split = text.range(of: "\r\n\r\n") {
                let headers = text[..<split.lowerBound].lowercased()
                if let line = headers.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                    let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)),
                    text.utf8.count - text[..<split.upperBound].utf8.count >= length
                {
                    break
                }
            }
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let statusLine = text.split(separator: "\r\n").first, statusLine.split(separator: " ").count >= 2,
            let status = Int(statusLine.split(separator: " ")[1])
        else { throw ClusterError("unreadable HTTP response: \(text.prefix(200))") }
        let bodyText = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return (status, bodyText)
    }
}
