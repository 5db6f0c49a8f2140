import Foundation
import L2PDDecoding
import L2PDEngine
import L2PDFilter
import L2PDModel
import L2PDTokenizer
import L2PDTransport

/// The coordinator: owns requests, the unmask policy and EoTP, and drives a `ServingPipeline`
/// with the same decoder as single-process mode: the workers of a cluster (`NetworkPipeline`,
/// holding no weights, only the model's config and tokenizer) or the whole model in this
/// process (`l2pd serve`). Decodes up to `limits.concurrent` requests at once; in a cluster their
/// forward passes occupy different stages at the same time (pipelining).
public actor Coordinator {
    public nonisolated let pipeline: any ServingPipeline
    public let batching: BatchingPipeline
    public nonisolated let limits: AdmissionLimits
    private let generator: TextGenerator
    private let filter: FilterNetwork?
    private let gate: AdmissionGate
    public nonisolated let requestLimits: RequestLimits
    /// Seconds any request may take at most, queueing included (its own `timeout` may be shorter).
    public nonisolated let requestTimeout: Double
    private var nextSequenceID: UInt64 = 1
    private var counters = CoordinatorCounters()

    /// Serves through `pipeline`: a cluster's workers, or the whole model in this process.
    public init(
        pipeline: any ServingPipeline, tokenizer: Tokenizer, filter: FilterNetwork?, limits: AdmissionLimits = AdmissionLimits(),
        requestLimits: RequestLimits = RequestLimits(), requestTimeout: Double = 600
    ) {
        self.pipeline = pipeline
        self.requestTimeout = max(0.001, min(requestTimeout, GenerationRequest.maxTimeout))
        // Forwards of concurrent requests leave together once enough batches are in flight.
        batching = BatchingPipeline(pipeline, maxInFlight: limits.batchesInFlight ?? 2 * max(1, pipeline.workerCount))
        generator = TextGenerator(tokenizer: tokenizer, pipeline: batching)
        self.filter = filter
        self.limits = limits
        self.requestLimits = requestLimits
        gate = AdmissionGate(limits: limits)
    }

    /// A cluster coordinator: the model's config and tokenizer from `modelDirectory` (never its
    /// weights), the workers' layers over nng, proving `clusterSecret` to them.
    public init(
        modelDirectory: URL, workers: [WorkerEndpoint], filter: FilterNetwork?, timeout: Double = 60,
        faultTolerance: FaultTolerance = FaultTolerance(), clusterSecret: String? = nil, tls: TLSConfiguration? = nil,
        links: StageLinks = .chained, limits: AdmissionLimits = AdmissionLimits(), requestLimits: RequestLimits = RequestLimits(),
        requestTimeout: Double = 600,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) throws {
        let config = try ModelConfig.load(from: modelDirectory.appendingPathComponent("config.json"))
        let tokenizer = try Tokenizer(contentsOf: modelDirectory.appendingPathComponent("tokenizer.json"))
        let network = try NetworkPipeline(
            config: config, fingerprint: try ModelFingerprint.of(directory: modelDirectory), workers: workers, timeout: timeout,
            faultTolerance: faultTolerance, clusterSecret: clusterSecret, tls: tls, links: links, log: log)
        self.init(
            pipeline: network, tokenizer: tokenizer, filter: filter, limits: limits, requestLimits: requestLimits,
            requestTimeout: requestTimeout)
    }

    /// Graceful shutdown: refuses new requests (503 with Retry-After) and waits for those admitted
    /// to finish, at most `timeout` seconds. Returns whether every one finished.
    public func drain(timeout: Double) async -> Bool {
        await gate.startDraining()
        let gate = self.gate
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await gate.waitUntilIdle()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(Int(max(0, min(timeout, 86_400)) * 1000)))
                return false
            }
            defer { group.cancelAll() }
            return await group.next() ?? false
        }
    }

    public var isDraining: Bool { get async { await gate.draining } }

    /// Greets every worker and assigns its layers; fails naming the first worker that cannot serve.
    public func connect() async throws { try await pipeline.connect() }

    public var statistics: CoordinatorCounters {
        get async {
            var c = counters
            c.running = await gate.running
            c.waiting = await gate.waiting
            c.refusedBusy = await gate.refused
            c.batches = await batching.batches
            c.batchedSequences = await batching.batchedSequences
            return c
        }
    }

    public nonisolated var tokenizer: Tokenizer { generator.tokenizer }

    /// Tokens of the request's prompt as the model sees it (0 when it cannot be encoded).
    public nonisolated func promptTokenCount(_ request: GenerationRequest) -> Int {
        guard (try? requestLimits.check(prompt: request.prompt)) != nil else { return 0 }
        return (try? generator.promptTokens(request.prompt, raw: request.raw ?? false).count) ?? 0
    }

    /// Decodes one request. Every field is validated and the prompt tokenized (off Swift's
    /// cooperative pool, its size bounded first) before the request takes a decoding slot, so a
    /// bad or large request never delays the others. `onStep` sees every decoding step (for
    /// streaming); it must not block.
    /// The request fails with `RequestTimedOut` (504) once it has taken its `timeout` (at most
    /// the server's `requestTimeout`), however long any one stage takes; its caches are freed.
    public func generate(
        _ request: GenerationRequest, onStep: (@Sendable (StepEvent) -> Void)? = nil
    ) async throws -> GenerationReply {
        let seconds = min(request.timeout.flatMap { $0 > 0 && $0.isFinite ? $0 : nil } ?? requestTimeout, requestTimeout)
        return try await withThrowingTaskGroup(of: GenerationReply.self) { group in
            group.addTask { try await self.generateWithoutDeadline(request, onStep: onStep) }
            group.addTask {
                try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
                throw RequestTimedOut(seconds: seconds)
            }
            defer { group.cancelAll() }
            do {
                return try await group.next()!
            } catch let error as RequestTimedOut {
                counters.timedOut += 1
                throw error
            }
        }
    }

    private func generateWithoutDeadline(
        _ request: GenerationRequest, onStep: (@Sendable (StepEvent) -> Void)?
    ) async throws -> GenerationReply {
        do {
            let options = try request.validated(
                limits: requestLimits, maxSequenceLength: pipeline.config.maxSequenceLength, filter: filter)
            let generator = self.generator
            let prompt = try await OffPool.run { try generator.promptTokens(request.prompt, raw: request.raw ?? false) }
            try generator.decoder.validate(promptLength: prompt.count, options: options)
            try await gate.admit()
            let id = nextSequenceID
            nextSequenceID += 1
            do {
                let reply = GenerationReply(
                    try await generator.generate(promptTokens: prompt, options: options, sequenceID: id, onStep: onStep))
                await gate.leave()
                counters.served += 1
                counters.forwardPasses += reply.nfe
                counters.usefulTokens += reply.useful_tokens
                return reply
            } catch {
                await gate.leave()
                throw error
            }
        } catch {
            if !(error is CoordinatorBusy) { counters.failed += 1 }
            throw error
        }
    }

    /// Serves JSON requests on `server` until it closes, answering up to `limits.concurrent +
    /// limits.queued` clients at once plus a few more that hear "busy" straight away. Requests
    /// are parsed off the cooperative pool; one that does not parse is answered at once.
    public nonisolated func serve(on server: ReplyServer) async throws {
        try await server.serve(contexts: limits.concurrent + limits.queued + 4) { bytes in
            let limits = self.requestLimits
            let parsed = (try? await OffPool.run { Self.decode(bytes, limits: limits) }) ?? .failure(RequestError("unreadable request"))
            switch parsed {
            case .failure(let error): return Self.errorReply(error)
            case .success(let request):
                do { return Array(try JSONEncoder().encode(try await self.generate(request))) } catch { return Self.errorReply(error) }
            }
        }
    }

    /// The JSON reply to one JSON request: a `GenerationReply`, or `{"error": "...", "kind": "..."}`
    /// with `kind` an `ErrorClass` raw value.
    public func answer(_ bytes: [UInt8]) async -> [UInt8] {
        switch Self.decode(bytes, limits: requestLimits) {
        case .failure(let error): return Self.errorReply(error)
        case .success(let request):
            do { return Array(try JSONEncoder().encode(try await generate(request))) } catch { return Self.errorReply(error) }
        }
    }

    /// A request as sent over nng: size checked before it is parsed, types strict.
    static func decode(_ bytes: [UInt8], limits: RequestLimits) -> Result<GenerationRequest, RequestError> {
        guard bytes.count <= limits.maxBodyBytes else {
            return .failure(RequestError("the request has \(bytes.count) bytes; this server accepts at most \(limits.maxBodyBytes)"))
        }
        do { return .success(try JSONDecoder().decode(GenerationRequest.self, from: Data(bytes))) } catch {
            return .failure(RequestError(decoding: error))
        }
    }

    static func errorReply(_ error: any Error) -> [UInt8] {
        let text = String(describing: error)
        let body = ["error": text, "kind": ErrorClass.of(error).rawValue]
        return Array((try? JSONEncoder().encode(body)) ?? Data(#"{"error":"unknown","kind":"server_error"}"#.utf8))
    }
}
