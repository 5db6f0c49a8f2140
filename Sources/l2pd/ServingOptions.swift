import Foundation
import L2PDCluster
import L2PDCommandLine
import L2PDDecoding
import L2PDEngine
import L2PDModel
import L2PDTransport

/// The flags of a serving process (`l2pd coordinator`, `l2pd serve`), declared once.
enum ServingOptions {
    static let specs: [OptionSpec] = [
        .option("filter", "FILE", "Learn2PD filter for --policy learn2pd.", default: ModelLocator.defaultFilterDescription),
        .option("max-concurrent", "N", "Requests decoded at once (their forward passes are batched).", default: "8"),
        .option("queue", "N", "Requests that may wait for a turn; beyond that new requests are refused as busy.", default: "32"),
        .option(
            "batches-in-flight", "N", "Forward batches in flight at once; more waiting forwards leave together as one batch.",
            shown: "2 per worker; 2 in one process"),
        .option(
            "http", "URL", "OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, /metrics); none: off.",
            default: "http://127.0.0.1:7780"),
        .option("max-prompt-bytes", "N", "Largest prompt in UTF-8 bytes, refused before tokenizing.", default: "65536"),
        .option(
            "max-connections", "N", "Open HTTP connections at most; at the cap the oldest idle one makes room, else a newcomer gets 503.",
            default: "256"),
        .option("idle-timeout", "SECONDS", "HTTP keep-alive connections idle this long are closed.", default: "30"),
        .option("header-timeout", "SECONDS", "An HTTP request must arrive whole within this time of its first byte.", default: "10"),
        .option(
            "request-timeout", "SECONDS",
            "Longest a request may take, queueing included (a request's own 'timeout' may be shorter); then 504.",
            default: "600"),
        .option(
            "api-key", "KEY",
            "Require 'Authorization: Bearer KEY' on the HTTP API (else the L2PD_API_KEY environment variable); needed to listen beyond loopback."
        ),
        .option(
            "drain-seconds", "SECONDS", "On SIGINT or SIGTERM, how long requests in flight may take to finish (new ones get 503).",
            default: "30"),
    ]

    static func admission(_ o: ParsedOptions) throws -> AdmissionLimits {
        AdmissionLimits(
            concurrent: try o.positiveInt("max-concurrent")!, queued: try o.nonNegativeInt("queue")!,
            batchesInFlight: try o.positiveInt("batches-in-flight"))
    }

    static func requests(_ o: ParsedOptions) throws -> RequestLimits {
        RequestLimits(maxPromptBytes: try o.positiveInt("max-prompt-bytes")!)
    }

    static func requestTimeout(_ o: ParsedOptions) throws -> Double {
        let seconds = try o.double("request-timeout")!
        guard seconds > 0, seconds <= GenerationRequest.maxTimeout else {
            throw UsageError("--request-timeout must be above 0 and at most \(Int(GenerationRequest.maxTimeout)) seconds")
        }
        return seconds
    }

    /// The HTTP API key: `--api-key`, else `L2PD_API_KEY`; nil when neither is set.
    static func apiKey(_ o: ParsedOptions) -> String? {
        (o.string("api-key") ?? ProcessInfo.processInfo.environment["L2PD_API_KEY"]).flatMap { $0.isEmpty ? nil : $0 }
    }

    static func http(_ o: ParsedOptions) throws -> HTTPServer.Limits {
        var limits = HTTPServer.Limits()
        limits.maxConnections = try o.positiveInt("max-connections")!
        limits.idleSeconds = try o.double("idle-timeout")!
        limits.requestSeconds = try o.double("header-timeout")!
        guard limits.idleSeconds > 0, limits.requestSeconds > 0 else { throw UsageError("timeouts must be positive") }
        return limits
    }

    /// Opens the HTTP API (unless `none`) and the nng request/reply socket (unless nil), then
    /// serves until a stop signal. The first SIGINT or SIGTERM drains: new requests get 503 with
    /// Retry-After, those admitted finish (at most `--drain-seconds`), then the process exits 0.
    static func serve(_ coordinator: Coordinator, _ o: ParsedOptions, listen: String?, modelName: String, role: String) async throws {
        let drainSeconds = try o.double("drain-seconds")!
        guard drainSeconds >= 0 else { throw UsageError("--drain-seconds must be at least 0") }
        var httpServer: HTTPServer? = nil
        if let address = o.string("http"), address != "none" {
            let key = apiKey(o)
            guard key != nil || HTTPAPI.isLoopback(address) else {
                throw UsageError("--http \(address) listens beyond loopback: set --api-key (or L2PD_API_KEY) so strangers cannot use it")
            }
            let server = try HTTPServer(url: address, limits: try Self.http(o))
            try HTTPAPI(coordinator: coordinator, modelName: modelName, apiKey: key).install(on: server)
            try server.start()
            printError("\(role): HTTP API on \(address)\(key == nil ? "" : " (API key required)")")
            httpServer = server
        }
        let http = httpServer
        defer { http?.stop() }
        let replies = try listen.map {
            try ReplyServer(listening: $0, maxMessageBytes: max(4 << 20, coordinator.requestLimits.maxBodyBytes))
        }
        StopSignals.install(role) {
            let finished = await coordinator.drain(timeout: drainSeconds)
            try? await Task.sleep(for: .milliseconds(200))  // the last replies reach their sockets
            http?.stop()
            replies?.close()
            printError(
                finished ? "\(role): every request finished; stopping" : "\(role): drain timed out after \(drainSeconds) s; stopping")
        }
        let limits = coordinator.limits
        guard let replies, let listen else {
            printError("\(role): ready (\(limits.concurrent) at once, \(limits.queued) queued)")
            while true { try await Task.sleep(for: .seconds(3600)) }
        }
        printError("\(role): listening on \(listen) (\(limits.concurrent) at once, \(limits.queued) queued)")
        try await coordinator.serve(on: replies)
        while true { try await Task.sleep(for: .seconds(3600)) }  // a drain in progress exits the process
    }
}
