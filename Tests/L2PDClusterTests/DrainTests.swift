import Foundation
import L2PDEngine
import L2PDTransport
import Testing

@testable import L2PDCluster

/// SIGTERM to a serving process: requests in flight (plain HTTP, streamed HTTP and nng) all
/// finish, `/health` says it is draining and new requests get 503 meanwhile, and the process
/// exits 0.
@Suite(.serialized) struct DrainTests {
    @Test func sigtermFinishesEveryRequestInFlightAndExitsZero() async throws {
        let port = 16_000 + Int.random(in: 0..<1_000)
        let nng = "tcp://127.0.0.1:\(port + 1_000)"
        let process = Process()
        process.executableURL = try WorkerProcesses.executable
        // A drain window far beyond the requests' length: the test is about every request
        // finishing, not about how fast a loaded machine decodes them.
        process.arguments = [
            "serve", "--http", "http://127.0.0.1:\(port)", "--listen", nng, "--threads", "1", "--drain-seconds",
            "\(2 * slowRequestSeconds)",
        ]
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        try await retrying {
            let (status, _) = try await offPool { try RawHTTP.request(port: port, "GET", "/health") }
            guard status == 200 else { throw ClusterError("not up yet") }
        }
        // Slow requests: the one-token-per-step baseline over a 256-token canvas.
        let slow = #""policy": "baseline", "gen_length": 256"#
        let plain = #"{"prompt": "Count from 1 to 30.", \#(slow)}"#
        let streamed = #"{"messages": [{"role": "user", "content": "Count from 5 to 30."}], "stream": true, \#(slow)}"#
        let overNNG = #"{"prompt": "Count from 2 to 30.", \#(slow)}"#
        let outcomes = try await withThrowingTaskGroup(of: (String, Bool, String).self) { group in
            for _ in 0..<3 {
                group.addTask {
                    let (status, body) = try await offPool { try RawHTTP.request(port: port, "POST", "/v1/completions", body: plain) }
                    return ("http", status == 200 && body.contains("\"choices\""), body)
                }
                group.addTask {
                    let (status, body) = try await offPool {
                        try RawHTTP.request(port: port, "POST", "/v1/chat/completions", body: streamed)
                    }
                    return ("sse", status == 200 && body.hasSuffix("data: [DONE]\n\n") && !body.contains("\"error\""), body)
                }
            }
            for _ in 0..<2 {
                group.addTask {
                    let reply = try await RequestSocket(dialing: nng).request(Array(overNNG.utf8), timeout: Double(slowRequestSeconds))
                    let text = String(decoding: reply, as: UTF8.self)
                    return ("nng", text.contains("\"tokens\"") && !text.contains("\"error\""), text)
                }
            }
            try await Task.sleep(for: .seconds(1))  // every request is in flight
            kill(process.processIdentifier, SIGTERM)
            try await Task.sleep(for: .milliseconds(200))
            let (healthStatus, health) = try await offPool { try RawHTTP.request(port: port, "GET", "/health") }
            #expect(healthStatus == 503 && health.contains("draining"), "\(healthStatus) \(health)")
            let (newStatus, refusal) = try await offPool { try RawHTTP.request(port: port, "POST", "/v1/completions", body: plain) }
            #expect(newStatus == 503 && refusal.contains("shutting down"), "\(newStatus) \(refusal)")
            var out: [(String, Bool, String)] = []
            for try await outcome in group { out.append(outcome) }
            return out
        }
        #expect(outcomes.count == 8)
        for (door, ok, body) in outcomes { #expect(ok, "\(door): \(body.suffix(300))") }
        let exited = try await offPool { () -> Bool in
            for _ in 0..<600 where process.isRunning { Thread.sleep(forTimeInterval: 0.1) }
            return !process.isRunning
        }
        #expect(exited)
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)
    }
}
