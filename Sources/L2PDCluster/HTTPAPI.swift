import Foundation
import L2PDDecoding
import L2PDEngine
import L2PDTransport

/// The coordinator's OpenAI-shaped HTTP API:
/// - `POST /v1/completions`: `prompt` sent as is (no chat format);
/// - `POST /v1/chat/completions`: the whole conversation (system, user, assistant messages)
///   in the LLaDA-Instruct chat format;
/// - `GET /v1/models`, `GET /health`, `GET /metrics` (Prometheus text).
/// Both POST routes take every decoding field of `DecodingParameters` (`policy`, `gen_length`,
/// `block_length`, `steps`, `cache`, `eotp`, `eotp_gate`, `threshold`, `factor`, `delta`, `tau`,
/// `temperature`, `seed`); `max_tokens` stands for `gen_length` when that is absent. Errors are
/// JSON with the status of their `ErrorClass` (400, 503 with Retry-After, 504, 500). With `"stream": true` the reply is server-sent events: one
/// chunk each time a block of the answer is committed from its start, a last chunk with the
/// finish reason and statistics, then `data: [DONE]`.
public struct HTTPAPI: Sendable {
    public let coordinator: Coordinator
    public let modelName: String
    /// With a key, every route but `/health` needs `Authorization: Bearer <key>` (else 401).
    public let apiKey: String?

    public init(coordinator: Coordinator, modelName: String, apiKey: String? = nil) {
        self.coordinator = coordinator
        self.modelName = modelName
        self.apiKey = apiKey.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Routes the API on `server` (which the caller starts and stops).
    public func install(on server: HTTPServer) throws {
        try server.route("GET", "/health") { _, exchange in
            Task { exchange.respond(await health()) }
        }
        try authorized(server, "GET", "/v1/models") { _, exchange in
            exchange.respond(
                json(
                    [
                        "object": "list", "data": [["id": modelName, "object": "model", "owned_by": "l2pd"]],
                    ] as [String: Any]))
        }
        try authorized(server, "GET", "/metrics") { _, exchange in
            Task { exchange.respond(HTTPResponse(contentType: "text/plain; version=0.0.4", body: Array(await metrics().utf8))) }
        }
        // Bodies are bounded by the server before they arrive and parsed on the server's handler
        // queue, never on Swift's cooperative pool.
        let maxBody = coordinator.requestLimits.maxBodyBytes
        try authorized(server, "POST", "/v1/completions", maxBodyBytes: maxBody) { request, exchange in
            let parsed = Result { try Self.generationRequest(request.body, chat: false) }
            Task { await serve(parsed, chat: false, exchange: exchange) }
        }
        try authorized(server, "POST", "/v1/chat/completions", maxBodyBytes: maxBody) { request, exchange in
            let parsed = Result { try Self.generationRequest(request.body, chat: true) }
            Task { await serve(parsed, chat: true, exchange: exchange) }
        }
    }

    /// A route that answers 401 unless the request carries the API key (when one is set).
    private func authorized(
        _ server: HTTPServer, _ method: String, _ path: String, maxBodyBytes: Int = 1 << 20,
        _ handler: @escaping HTTPServer.Handler
    ) throws {
        guard let apiKey else { return try server.route(method, path, maxBodyBytes: maxBodyBytes, handler) }
        let expected = Array("Bearer \(apiKey)".utf8)
        try server.route(method, path, maxBodyBytes: maxBodyBytes) { request, exchange in
            guard Self.constantTimeEqual(Array((request.header("Authorization") ?? "").utf8), expected) else {
                var response = Self.error(
                    401, type: "authentication_error", "missing or wrong API key (send Authorization: Bearer <key>)")
                response.headers.append(("WWW-Authenticate", "Bearer"))
                return exchange.respond(response)
            }
            handler(request, exchange)
        }
    }

    /// Whether an `http://HOST:PORT` address listens on loopback only (where no API key is needed).
    public static func isLoopback(_ address: String) -> Bool {
        var host = address.hasPrefix("http://") ? String(address.dropFirst(7)) : address
        if let slash = host.firstIndex(of: "/") { host = String(host[..<slash]) }
        if let colon = host.lastIndex(of: ":") { host = String(host[..<colon]) }
        return host == "localhost" || host == "[::1]" || (host.hasPrefix("127.") && host.split(separator: ".").count == 4)
    }

    /// Compares without stopping at the first difference (timing tells nothing of the key).
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }

    func serve(_ body: Result<(request: GenerationRequest, stream: Bool), any Error>, chat: Bool, exchange: HTTPExchange) async {
        let parsed: (request: GenerationRequest, stream: Bool)
        do {
            parsed = try body.get()
        } catch {
            return exchange.respond(Self.error(400, type: "invalid_request_error", String(describing: error)))
        }
        guard parsed.stream else { return exchange.respond(await complete(parsed.request, chat: chat)) }
        guard let stream = exchange.stream(contentType: "text/event-stream") else { return }
        let id = Self.completionID(chat: chat)
        let created = Int(Date().timeIntervalSince1970)
        @Sendable func event(_ object: [String: Any]) -> [UInt8] {
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
            return Array("data: ".utf8) + Array(data) + Array("\n\n".utf8)
        }
        @Sendable func chunk(_ text: String?, finish: String?, extra: [String: Any] = [:]) -> [String: Any] {
            var choice: [String: Any] = ["index": 0, "finish_reason": finish ?? NSNull()]
            if chat { choice["delta"] = text.map { ["content": $0] } ?? [:] } else { choice["text"] = text ?? "" }
            return [
                "id": id, "object": chat ? "chat.completion.chunk" : "text_completion", "created": created, "model": modelName,
                "choices": [choice],
            ].merging(extra) { a, _ in a }
        }
        let config = coordinator.pipeline.config
        let commits = CommitStreamBox(
            CommitStream(
                tokenizer: coordinator.tokenizer, maskID: config.maskTokenID, endOfTextID: config.eosTokenID,
                blockLength: parsed.request.parameters.blockLength ?? DecodingParameters.defaultBlockLength))
        do {
            // The decode runs beside a watcher: a client that goes away cancels it, which
            // frees the request's caches on every worker.
            let request = parsed.request
            let reply = try await withThrowingTaskGroup(of: GenerationReply?.self) { group in
                group.addTask {
                    try await coordinator.generate(request) { step in
                        if let delta = commits.update(step), !delta.isEmpty {
                            stream.write(event(chunk(delta, finish: nil)))
                        }
                    }
                }
                group.addTask {
                    await stream.waitUntilClientGone()
                    return nil
                }
                defer { group.cancelAll() }
                while let next = try await group.next() {
                    guard let reply = next else { throw ClientGone() }
                    return reply
                }
                throw ClientGone()
            }
            if let rest = commits.remainder(of: reply.text), !rest.isEmpty { stream.write(event(chunk(rest, finish: nil))) }
            stream.write(event(chunk(nil, finish: "stop", extra: ["l2pd": Self.statistics(reply)])))
        } catch {
            let (_, type) = Self.classify(error)
            stream.write(event(["error": ["message": String(describing: error), "type": type]]))
        }
        stream.write(Array("data: [DONE]\n\n".utf8))
        stream.close()
    }

    /// One completion: the request in, the OpenAI-shaped reply (or error) out.
    public func complete(_ request: GenerationRequest, chat: Bool) async -> HTTPResponse {
        let created = Int(Date().timeIntervalSince1970)
        let reply: GenerationReply
        do {
            reply = try await coordinator.generate(request)
        } catch {
            let (status, type) = Self.classify(error)
            return Self.error(status, type: type, String(describing: error))
        }
        let promptTokens = coordinator.promptTokenCount(request)
        let choice: [String: Any] =
            chat
            ? ["index": 0, "message": ["role": "assistant", "content": reply.text], "finish_reason": "stop"]
            : ["index": 0, "text": reply.text, "finish_reason": "stop"]
        return json(
            [
                "id": Self.completionID(chat: chat), "object": chat ? "chat.completion" : "text_completion", "created": created,
                "model": modelName, "choices": [choice],
                "usage": [
                    "prompt_tokens": promptTokens, "completion_tokens": reply.tokens.count,
                    "total_tokens": promptTokens + reply.tokens.count,
                ],
                "l2pd": Self.statistics(reply),
            ] as [String: Any])
    }

    static func completionID(chat: Bool) -> String {
        "\(chat ? "chatcmpl" : "cmpl")-\(UUID().uuidString.prefix(12).lowercased())"
    }

    static func statistics(_ reply: GenerationReply) -> [String: Any] {
        [
            "nfe": reply.nfe, "positions": reply.positions, "useful_tokens": reply.useful_tokens, "tpf": reply.tpf,
            "tps": reply.tps, "seconds": reply.seconds,
        ]
    }

    /// HTTP status and OpenAI error type of a failed generation.
    static func classify(_ error: any Error) -> (UInt16, String) {
        let errorClass = ErrorClass.of(error)
        return (errorClass.httpStatus, errorClass.rawValue)
    }

    /// Reads an OpenAI-shaped body into the coordinator's request; names what is wrong.
    static func generationRequest(_ body: [UInt8], chat: Bool) throws -> (request: GenerationRequest, stream: Bool) {
        do {
            if chat {
                let parsed = try JSONDecoder().decode(ChatCompletionBody.self, from: Data(body))
                return (try parsed.request(), parsed.options.stream ?? false)
            }
            let parsed = try JSONDecoder().decode(CompletionBody.self, from: Data(body))
            return (parsed.request, parsed.options.stream ?? false)
        } catch let error as RequestError {
            throw error
        } catch {
            throw RequestError(decoding: error)
        }
    }

    /// `ok` when every worker serves; `degraded` (still 200) when some are lost but every stage
    /// has a replica serving; `unavailable` (503) when a stage has none; `draining` (503).
    func health() async -> HTTPResponse {
        let pipeline = coordinator.pipeline
        let statuses = pipeline.workerStatuses
        let draining = await coordinator.isDraining
        let up = statuses.filter { $0.state == .up }.count
        let status =
            draining ? "draining" : !pipeline.canServe ? "unavailable" : up == statuses.count ? "ok" : "degraded"
        let workers = statuses.map {
            ["url": $0.url, "layers": [$0.layers.lowerBound, $0.layers.upperBound], "state": $0.state.rawValue] as [String: Any]
        }
        return json(
            [
                "status": status, "workers": pipeline.workerCount, "workers_connected": pipeline.connectedWorkers,
                "workers_up": up, "worker_states": workers,
            ],
            status: status == "ok" || status == "degraded" ? 200 : 503)
    }

    /// Prometheus text exposition of the coordinator's counters.
    public func metrics() async -> String {
        let c = await coordinator.statistics
        let wire = coordinator.pipeline.statistics
        var lines: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            lines.append("# HELP l2pd_\(name) \(help)")
            lines.append("# TYPE l2pd_\(name) \(type)")
            for (labels, value) in samples { lines.append("l2pd_\(name)\(labels) \(value)") }
        }
        metric(
            "requests_total", "counter", "Generation requests by outcome.",
            [
                ("{outcome=\"ok\"}", Double(c.served)), ("{outcome=\"failed\"}", Double(c.failed)),
                ("{outcome=\"busy\"}", Double(c.refusedBusy)), ("{outcome=\"timeout\"}", Double(c.timedOut)),
            ])
        let faults = coordinator.pipeline.faultCounters
        let statuses = coordinator.pipeline.workerStatuses
        metric(
            "workers", "gauge", "Workers by state (up, down: silent past the heartbeat limit, disconnected).",
            WorkerStatus.State.allCases.map { state in
                ("{state=\"\(state.rawValue)\"}", Double(statuses.filter { $0.state == state }.count))
            })
        let reporting = statuses.filter { $0.weightBytes != nil }
        if !reporting.isEmpty {
            func label(_ s: WorkerStatus) -> String { "{worker=\"\(s.url)\",layers=\"\(s.layers.lowerBound)..<\(s.layers.upperBound)\"}" }
            metric(
                "worker_weight_bytes", "gauge", "Bytes of weights each worker holds, in the dtype it holds them (last heartbeat).",
                reporting.map { (label($0), Double($0.weightBytes ?? 0)) })
            metric(
                "worker_cache_bytes", "gauge", "Bytes of K/V caches each worker keeps (last heartbeat).",
                reporting.map { (label($0), Double($0.cacheBytes ?? 0)) })
        }
        metric(
            "workers_lost_total", "counter", "Workers that disconnected or went silent while serving.", [("", Double(faults.lostWorkers))])
        metric("passes_retried_total", "counter", "Forward passes run again after a worker was lost.", [("", Double(faults.retriedPasses))])
        metric(
            "sequences_moved_total", "counter", "Requests moved to another replica after theirs was lost.",
            [("", Double(faults.movedSequences))])
        metric(
            "cache_replays_total", "counter", "Cache refreshes replayed to rebuild caches a lost worker held.",
            [("", Double(faults.replayedRefreshes))])
        metric("requests_running", "gauge", "Requests being decoded.", [("", Double(c.running))])
        metric("queue_depth", "gauge", "Requests waiting for a decoding slot.", [("", Double(c.waiting))])
        metric("forward_passes_total", "counter", "Forward passes of finished requests.", [("", Double(c.forwardPasses))])
        metric("committed_tokens_total", "counter", "Useful answer tokens of finished requests.", [("", Double(c.usefulTokens))])
        metric(
            "tokens_per_forward", "gauge", "Useful tokens per forward pass over all finished requests.",
            [("", c.forwardPasses > 0 ? Double(c.usefulTokens) / Double(c.forwardPasses) : 0)])
        metric(
            "batch_size", "gauge", "Mean sequences per forward batch sent to the workers.",
            [("", c.batches > 0 ? Double(c.batchedSequences) / Double(c.batches) : 0)])
        if !wire.stageSeconds.isEmpty {
            metric(
                "stage_busy_seconds_total", "counter",
                "Seconds each stage spent answering forward frames (round trip; relayed passes only).",
                wire.stageSeconds.enumerated().map { ("{stage=\"\($0.offset + 1)\"}", $0.element) })
        }
        metric(
            "wire_transits_total", "counter",
            "Frames that crossed a link for forward passes: 2 per stage relayed, stages + 1 per chained pass.",
            [("", Double(wire.transits))])
        metric(
            "wire_passes_total", "counter", "Forward passes through the workers: whole canvases (full) or cached steps (cached).",
            [("{kind=\"full\"}", Double(wire.fullPasses)), ("{kind=\"cached\"}", Double(wire.cachedSteps))])
        metric(
            "wire_pass_seconds_total", "counter", "Seconds of those passes, first frame sent to readouts back.",
            [("{kind=\"full\"}", wire.fullPassSeconds), ("{kind=\"cached\"}", wire.cachedStepSeconds)])
        if let bytes = coordinator.pipeline.heldWeightBytes {
            metric("weight_bytes", "gauge", "Bytes of weights this process holds, in the dtype they are held in.", [("", Double(bytes))])
        }
        metric(
            "wire_bytes_total", "counter", "Frame bytes to and from the workers.",
            [
                ("{direction=\"sent\"}", Double(wire.bytesSent)), ("{direction=\"received\"}", Double(wire.bytesReceived)),
            ])
        return lines.joined(separator: "\n") + "\n"
    }

    static func error(_ status: UInt16, type: String, _ message: String) -> HTTPResponse {
        HTTPResponse.error(status, type: type, message)
    }
}

/// A streaming client closed its connection before the answer was complete.
struct ClientGone: Error, CustomStringConvertible {
    var description: String { "the client closed the connection" }
}

private func json(_ object: [String: Any], status: UInt16 = 200) -> HTTPResponse {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    return HTTPResponse(status: status, body: Array(data))
}
