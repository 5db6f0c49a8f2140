import Foundation
import L2PDDecoding
import L2PDDefaultModel
import L2PDEngine
import L2PDTransport
import Testing

@testable import L2PDCluster

/// `l2pd serve`: the coordinator over the whole model in this process, answering over a real
/// HTTP socket exactly what a direct generation gives.
@Suite struct ServeTests {
    @Test func aSingleProcessServerAnswersLikeTheEngine() async throws {
        let bundle = try ModelBundle(directory: try #require(DefaultModel.directory))
        let pipeline = try InProcessPipeline(checkpoint: bundle.checkpoint)
        let coordinator = Coordinator(pipeline: pipeline, tokenizer: bundle.tokenizer, filter: nil)
        let http = try HTTPServer(url: "http://127.0.0.1:0")
        try HTTPAPI(coordinator: coordinator, modelName: "default").install(on: http)
        try http.start()
        defer { http.stop() }
        let port = Int(http.port)

        let (healthStatus, health) = try await offPool { try RawHTTP.request(port: port, "GET", "/health") }
        #expect(healthStatus == 200 && health.contains("\"ok\""), "\(health)")

        let prompt = "Copy the digits 8675309."
        var parameters = DecodingParameters()
        parameters.policy = "threshold"
        parameters.genLength = 64
        parameters.blockLength = 32
        let expected = try await TextGenerator(tokenizer: bundle.tokenizer, pipeline: pipeline)
            .generate(prompt, options: try parameters.options(maxSequenceLength: 2048, filter: nil)).text
        let body = #"{"messages": [{"role": "user", "content": "\#(prompt)"}], "policy": "threshold", "gen_length": 64}"#
        let (status, text) = try await offPool { try RawHTTP.request(port: port, "POST", "/v1/chat/completions", body: body) }
        #expect(status == 200, "\(text)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let choice = try #require((object["choices"] as? [[String: Any]])?.first)
        #expect((choice["message"] as? [String: Any])?["content"] as? String == expected)
        let counters = await coordinator.statistics
        #expect(counters.served == 1)
    }

    /// With an API key, every route but `/health` refuses a request without the right Bearer
    /// token (401), and serves one with it.
    @Test func theAPIKeyIsRequiredWhenSet() async throws {
        let bundle = try ModelBundle(directory: try #require(DefaultModel.directory))
        let coordinator = Coordinator(
            pipeline: try InProcessPipeline(checkpoint: bundle.checkpoint), tokenizer: bundle.tokenizer, filter: nil)
        let http = try HTTPServer(url: "http://127.0.0.1:0")
        try HTTPAPI(coordinator: coordinator, modelName: "default", apiKey: "sesame").install(on: http)
        try http.start()
        defer { http.stop() }
        let port = Int(http.port)
        func send(_ method: String, _ path: String, authorization: String?, body: String = "") async throws -> (Int, String) {
            let header = authorization.map { "Authorization: \($0)\r\n" } ?? ""
            let head =
                "\(method) \(path) HTTP/1.1\r\nHost: x\r\n\(header)Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
            return try await offPool { try RawHTTP.exchange(port: port, Array((head + body).utf8)) }
        }
        let body = #"{"prompt": "What is 1 + 2?", "policy": "threshold", "gen_length": 32}"#
        for authorization in [nil, "Bearer sesam", "Bearer sesame2", "Basic sesame", "sesame", "Bearer "] {
            for (method, path) in [
                ("POST", "/v1/completions"), ("POST", "/v1/chat/completions"), ("GET", "/metrics"), ("GET", "/v1/models"),
            ] {
                let (status, text) = try await send(method, path, authorization: authorization, body: method == "POST" ? body : "")
                #expect(status == 401, "\(authorization ?? "none") \(path): \(status) \(text.prefix(120))")
                #expect(text.contains("authentication_error"))
            }
        }
        #expect(try await send("GET", "/health", authorization: nil).0 == 200)
        let (status, text) = try await send("POST", "/v1/completions", authorization: "Bearer sesame", body: body)
        #expect(status == 200, "\(text.prefix(200))")
        #expect(try await send("GET", "/metrics", authorization: "Bearer sesame").0 == 200)
        #expect(await coordinator.statistics.served == 1)
    }

    @Test func keysCompareWholeAndOnlyLoopbackGoesWithoutOne() {
        for address in ["http://127.0.0.1:7780", "http://localhost:80", "http://127.1.2.3:1", "http://[::1]:7780"] {
            #expect(HTTPAPI.isLoopback(address), "\(address)")
        }
        for address in ["http://0.0.0.0:7780", "http://10.0.0.2:80", "http://127.example.com:80", "http://[::]:80", "http://:80"] {
            #expect(!HTTPAPI.isLoopback(address), "\(address)")
        }
        #expect(HTTPAPI.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        #expect(!HTTPAPI.constantTimeEqual(Array("abc".utf8), Array("abd".utf8)))
        #expect(!HTTPAPI.constantTimeEqual(Array("abc".utf8), Array("abcd".utf8)))
        #expect(!HTTPAPI.constantTimeEqual([], Array("a".utf8)))
    }
}
