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
}
