import Foundation
import L2PDCluster
import L2PDCommandLine
import L2PDDecoding
import L2PDEngine
import L2PDEvaluation
import L2PDTasks
import L2PDTransport

struct LoadtestCommand: Command {
    static let path = ["loadtest"]
    static let summary = "Send many generation requests to a coordinator; print throughput, latency and accuracy."
    static let options: [OptionSpec] =
        [
            .option(
                "target", "URL",
                "Coordinator: its nng URL (cluster file's \"listen\") or its HTTP API (http://HOST:PORT, streamed, times the first block).",
                default: "tcp://127.0.0.1:7700"),
            .option("requests", "N", "Requests to send.", default: "32"),
            .option("concurrency", "C", "Clients sending back to back (ignored with --rate).", default: "1"),
            .option("rate", "R", "Poisson arrivals at R requests per second instead of fixed concurrency."),
            .option("duration", "SECONDS", "Start no request after this long (requests in flight finish)."),
            .option("prompts", "FILE", "JSONL prompts ({\"prompt\": ...}; task-suite lines are checked too).", default: "task suite"),
            .option("task-seed", "N", "Seed of the evaluation prompts from the task suite.", default: "1"),
            .option("request-timeout", "SECONDS", "How long one request may take.", default: "600"),
            .option("api-key", "KEY", "HTTP API key (else the L2PD_API_KEY environment variable), sent as a Bearer token."),
            .option("answers", "FILE", "Write each request's answer (null when it failed) as a JSON array, in request order."),
            .option("sweep", "LIST", "Run once per concurrency in LIST (e.g. 1,2,4,8,16) and print one table."),
            .option("json", "FILE", "Write the report as JSON (with --sweep: {\"rows\": [...]})."),
            .option("plot", "FILE", "Draw the latency distribution (with --sweep: throughput against latency) as SVG."),
        ]
        + DecodingOptions.specs.filter { !["model", "threads", "filter"].contains($0.name) }.map {
            $0.name == "policy" ? .option("policy", "NAME", "Unmask policy (suffix +eotp allowed).", shown: "threshold") : $0
        }

    static func run(_ o: ParsedOptions) async throws {
        let requests = try o.positiveInt("requests")!
        if o.string("sweep") != nil { return try await sweep(o, requests: requests) }
        let arrivals: LoadTestArrivals
        if let rate = try o.double("rate") {
            guard rate > 0 else { throw UsageError("--rate must be positive") }
            arrivals = .rate(rate)
        } else {
            arrivals = .concurrency(try o.positiveInt("concurrency")!)
        }
        var plan = LoadTestPlan(requests: requests, arrivals: arrivals, duration: try o.double("duration"))
        plan.seed = UInt64(try o.int("task-seed")!)
        let report = try await measure(o, plan: plan)
        print(table(report))
        if let path = o.string("json") {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: path))
        }
        if let path = o.string("answers") {
            try JSONEncoder().encode(report.answers).write(to: URL(fileURLWithPath: path))
        }
        if let path = o.string("plot") {
            try LatencyPlot.svg(report.latencies, title: "Latency of \(report.ok) requests, \(describe(arrivals))")
                .write(toFile: path, atomically: true, encoding: .utf8)
        }
        if report.ok == 0 { throw UsageError("no request succeeded: \(report.failed_by_kind)") }
    }

    /// One load test with the flags' prompts and request shape.
    static func measure(_ o: ParsedOptions, plan: LoadTestPlan) async throws -> LoadTestReport {
        let prompts = try loadPrompts(o, count: plan.requests)
        var template = try DecodingOptions.request(o, prompt: "")
        template.parameters.policy = template.parameters.policy ?? "threshold"
        _ = try PolicySpec(parsing: template.parameters.policy!)
        let requestTemplate = template
        let url = o.string("target")!
        let timeout = try o.double("request-timeout")!
        printError("loadtest: \(plan.requests) requests to \(url), \(describe(plan.arrivals))")
        let send: LoadTest.Send
        var faultsBefore: [String: Int]? = nil
        let apiKey = (o.string("api-key") ?? ProcessInfo.processInfo.environment["L2PD_API_KEY"]).flatMap { $0.isEmpty ? nil : $0 }
        if url.hasPrefix("http://") {
            let target = try HTTPClient.parse(url)
            faultsBefore = faultCounters(target, apiKey: apiKey)
            // The HTTP client blocks: each request on a thread of its own.
            send = { request in
                try await Blocking.run { try HTTPCompletionClient.generate(request, target: target, timeout: timeout, apiKey: apiKey) }
            }
        } else {
            let client = try CoordinatorClient(url: url)
            send = { request in LoadTestReply(try await client.generate(request, timeout: timeout)) }
        }
        let progress = Progress("loadtest", total: plan.requests)
        var report = await LoadTest.run(plan: plan, prompts: prompts, template: requestTemplate, send: send) { done, _ in
            progress.update(done)
        }
        if let before = faultsBefore, let after = faultCounters(try HTTPClient.parse(url), apiKey: apiKey) {
            func delta(_ name: String) -> Int? { after[name].map { $0 - (before[name] ?? 0) } }
            report.workers_lost = delta("l2pd_workers_lost_total")
            report.passes_retried = delta("l2pd_passes_retried_total")
            report.requests_moved = delta("l2pd_sequences_moved_total")
        }
        return report
    }

    /// The fault counters of the server's `/metrics` (nil when it cannot be read).
    static func faultCounters(_ target: HTTPClient.Target, apiKey: String?) -> [String: Int]? {
        let headers = apiKey.map { [(name: "Authorization", value: "Bearer \($0)")] } ?? []
        guard let (status, body) = try? HTTPClient.get(target, path: "/metrics", headers: headers, timeout: 5), status == 200 else {
            return nil
        }
        var counters: [String: Int] = [:]
        for line in body.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = Double(parts[1]) { counters[String(parts[0])] = Int(value) }
        }
        return counters
    }

    /// A row of `--sweep`'s table and JSON.
    struct SweepRow: Codable {
        var concurrency: Int
        var ok: Int
        var failed: Int
        var tokens_per_s: Double
        var latency_p50: Double
        var latency_p99: Double
        var accuracy: Double?
    }

    static func sweep(_ o: ParsedOptions, requests: Int) async throws {
        let levels = try o.list("sweep").map {
            guard let c = Int($0), c > 0 else { throw UsageError("--sweep expects positive integers, got '\($0)'") }
            return c
        }
        guard !levels.isEmpty else { throw UsageError("--sweep needs at least one concurrency") }
        var rows: [SweepRow] = []
        for c in levels {
            var plan = LoadTestPlan(requests: requests, arrivals: .concurrency(c), duration: try o.double("duration"))
            plan.seed = UInt64(try o.int("task-seed")!)
            let r = try await measure(o, plan: plan)
            rows.append(
                SweepRow(
                    concurrency: c, ok: r.ok, failed: r.failed, tokens_per_s: r.tokens_per_s, latency_p50: r.latency_p50,
                    latency_p99: r.latency_p99, accuracy: r.accuracy))
        }
        let base = rows.first?.tokens_per_s ?? 0
        print("concurrency    ok  failed  tokens/s  vs first  latency p50  latency p99  accuracy")
        for r in rows {
            let ratio = base > 0 ? r.tokens_per_s / base : 0
            print(
                String(
                    format: "%11d %5d %7d %9.1f %8.2fx %11.2fs %11.2fs  %@", r.concurrency, r.ok, r.failed, r.tokens_per_s, ratio,
                    r.latency_p50, r.latency_p99, r.accuracy.map { String(format: "%.3f", $0) } ?? "-"))
        }
        if let path = o.string("json") {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(["rows": rows]).write(to: URL(fileURLWithPath: path))
        }
        if let path = o.string("plot") {
            try LatencyPlot.throughputAgainstLatency(rows.map { ($0.concurrency, $0.tokens_per_s, $0.latency_p50) })
                .write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

    static func describe(_ arrivals: LoadTestArrivals) -> String {
        switch arrivals {
        case .concurrency(let c): return "concurrency \(c)"
        case .rate(let r): return "Poisson arrivals at \(r)/s"
        }
    }

    static func loadPrompts(_ o: ParsedOptions, count: Int) throws -> [LoadTestPrompt] {
        guard let path = o.string("prompts"), path != "task suite" else {
            return TaskSuite.examples(split: .eval, count: count, seed: UInt64(try o.int("task-seed")!)).map {
                LoadTestPrompt(prompt: $0.prompt, example: $0)
            }
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw UsageError("cannot read --prompts \(path)") }
        var prompts: [LoadTestPrompt] = []
        for (n, line) in text.split(separator: "\n").enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let data = Data(line.utf8)
            if let example = try? JSONDecoder().decode(TaskExample.self, from: data) {
                prompts.append(LoadTestPrompt(prompt: example.prompt, example: example))
            } else if let object = try? JSONDecoder().decode([String: String].self, from: data), let prompt = object["prompt"] {
                prompts.append(LoadTestPrompt(prompt: prompt))
            } else {
                throw UsageError("\(path) line \(n + 1) is not a JSON object with a \"prompt\" string")
            }
        }
        guard !prompts.isEmpty else { throw UsageError("\(path) holds no prompts") }
        return prompts
    }

    static func table(_ r: LoadTestReport) -> String {
        func f(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }
        var lines = [
            "requests        \(r.requests) (ok \(r.ok), failed \(r.failed)\(r.failed_by_kind.isEmpty ? "" : " \(r.failed_by_kind)"))",
            "wall time       \(f(r.seconds)) s",
            "throughput      \(f(r.requests_per_s)) requests/s, \(f(r.tokens_per_s, 1)) useful tokens/s",
            "latency         p50 \(f(r.latency_p50)) s   p90 \(f(r.latency_p90)) s   p99 \(f(r.latency_p99)) s",
            "per request     NFE \(f(r.mean_nfe, 1))   TPF \(f(r.mean_tpf))",
        ]
        if let p50 = r.first_block_p50, let p90 = r.first_block_p90, let p99 = r.first_block_p99 {
            lines.insert("first block     p50 \(f(p50)) s   p90 \(f(p90)) s   p99 \(f(p99)) s", at: 4)
        }
        if let accuracy = r.accuracy { lines.append("accuracy        \(f(accuracy, 3))") }
        if let lost = r.workers_lost, let retried = r.passes_retried, let moved = r.requests_moved {
            lines.append("faults          \(lost) workers lost, \(retried) passes retried, \(moved) requests moved to a replica")
        }
        return lines.joined(separator: "\n")
    }
}

/// Pictures of a load test as SVG.
enum LatencyPlot {
    /// One point per concurrency: median latency across, useful tokens per second up.
    static func throughputAgainstLatency(_ points: [(concurrency: Int, tokensPerSecond: Double, latency: Double)]) -> String {
        let (width, height, left, bottom, top, right) = (640.0, 400.0, 70.0, 50.0, 40.0, 30.0)
        let maxX = max(points.map(\.latency).max() ?? 1, 1e-3) * 1.1
        let maxY = max(points.map(\.tokensPerSecond).max() ?? 1, 1e-3) * 1.1
        func x(_ v: Double) -> Double { left + v / maxX * (width - left - right) }
        func y(_ v: Double) -> Double { height - bottom - v / maxY * (height - top - bottom) }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="11">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="22" font-size="14">Useful tokens per second against median latency, by concurrency</text>
            <line x1="\(left)" y1="\(height - bottom)" x2="\(width - right)" y2="\(height - bottom)" stroke="black"/>
            <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(height - bottom)" stroke="black"/>
            <text x="\(width / 2 - 50)" y="\(height - 12)">median latency (s)</text>
            <text x="14" y="\(height / 2 + 40)" transform="rotate(-90 14 \(height / 2 + 40))">useful tokens/s</text>

            """
        for i in 0...4 {
            let vx = maxX * Double(i) / 4
            let vy = maxY * Double(i) / 4
            svg += "<text x=\"\(x(vx) - 10)\" y=\"\(height - bottom + 16)\">\(String(format: "%.2f", vx))</text>\n"
            svg += "<text x=\"\(left - 50)\" y=\"\(y(vy) + 4)\">\(String(format: "%.0f", vy))</text>\n"
        }
        let path = points.map { "\(x($0.latency)),\(y($0.tokensPerSecond))" }.joined(separator: " ")
        svg += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"#1f77b4\"/>\n"
        for p in points {
            svg += "<circle cx=\"\(x(p.latency))\" cy=\"\(y(p.tokensPerSecond))\" r=\"4\" fill=\"#1f77b4\"/>"
            svg += "<text x=\"\(x(p.latency) + 6)\" y=\"\(y(p.tokensPerSecond) - 6)\">c=\(p.concurrency)</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// A histogram of request latencies.
    static func svg(_ latencies: [Double], title: String) -> String {
        let (width, height, left, bottom, top) = (640.0, 360.0, 60.0, 50.0, 40.0)
        let bins = 20
        let maximum = max(latencies.max() ?? 1, 1e-3)
        var counts = Array(repeating: 0, count: bins)
        for l in latencies { counts[min(bins - 1, Int(l / maximum * Double(bins)))] += 1 }
        let peak = Double(max(counts.max() ?? 1, 1))
        let barWidth = (width - left - 20) / Double(bins)
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="11">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="22" font-size="14">\(title)</text>
            <text x="\(width / 2 - 40)" y="\(height - 12)">latency (s)</text>
            <text x="14" y="\(height / 2)" transform="rotate(-90 14 \(height / 2))">requests</text>

            """
        for (i, c) in counts.enumerated() {
            let h = Double(c) / peak * (height - top - bottom)
            svg +=
                "<rect x=\"\(left + Double(i) * barWidth)\" y=\"\(height - bottom - h)\" width=\"\(barWidth - 2)\" height=\"\(h)\" fill=\"#1f77b4\"/>\n"
        }
        for i in 0...4 {
            let x = left + Double(i) / 4 * Double(bins) * barWidth
            svg += "<text x=\"\(x - 10)\" y=\"\(height - bottom + 16)\">\(String(format: "%.2f", maximum * Double(i) / 4))</text>\n"
        }
        svg += "<text x=\"\(left - 30)\" y=\"\(top + 4)\">\(Int(peak))</text>\n"
        return svg + "</svg>\n"
    }
}
