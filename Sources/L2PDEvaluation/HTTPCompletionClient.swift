import Foundation
import L2PDCluster
import L2PDEngine
import L2PDTokenizer
import L2PDTransport

/// Sends a generation request to the coordinator's HTTP API as a streaming chat completion
/// (or a plain completion when the request is raw) and times the first committed block.
public enum HTTPCompletionClient {
    /// `apiKey`: sent as `Authorization: Bearer` when the server requires one.
    public static func generate(
        _ request: GenerationRequest, target: HTTPClient.Target, timeout: Double, apiKey: String? = nil
    ) throws -> LoadTestReply {
        let raw = request.raw ?? false
        let bytes =
            raw
            ? Array(
                try JSONEncoder().encode(
                    CompletionBody(prompt: request.prompt, stream: true, parameters: request.parameters, timeout: request.timeout)))
            : Array(
                try JSONEncoder().encode(
                    ChatCompletionBody(
                        messages: [ChatMessage(role: "user", content: request.prompt)], stream: true, parameters: request.parameters,
                        timeout: request.timeout)))
        let start = DispatchTime.now().uptimeNanoseconds
        var text = ""
        var firstBlock: Double? = nil
        var statistics: [String: Any] = [:]
        var streamError: (type: String, message: String)? = nil
        let (status, rest) = try HTTPClient.post(
            target, path: raw ? "/v1/completions" : "/v1/chat/completions", body: bytes,
            headers: apiKey.map { [("Authorization", "Bearer \($0)")] } ?? [], timeout: timeout
        ) { event in
            guard event != "[DONE]", let object = try? JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any] else {
                return
            }
            if let error = object["error"] as? [String: Any] {
                streamError = (error["type"] as? String ?? "server_error", error["message"] as? String ?? "")
                return
            }
            let choice = (object["choices"] as? [[String: Any]])?.first
            let delta = (choice?["delta"] as? [String: Any])?["content"] as? String ?? choice?["text"] as? String ?? ""
            if !delta.isEmpty && firstBlock == nil { firstBlock = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
            text += delta
            if let stats = object["l2pd"] as? [String: Any] { statistics = stats }
        }
        if status != 200 || streamError != nil {
            let error = (try? JSONSerialization.jsonObject(with: Data(rest.utf8)) as? [String: Any])?["error"] as? [String: Any]
            let type = streamError?.type ?? error?["type"] as? String ?? "server_error"
            let message = streamError?.message ?? error?["message"] as? String ?? "HTTP \(status)"
            throw CoordinatorRefusal(kind: type, message: "coordinator: \(message)")
        }
        let reply: [String: Any] = [
            "text": text, "tokens": [Int](), "nfe": statistics["nfe"] ?? 0, "positions": statistics["positions"] ?? 0,
            "useful_tokens": statistics["useful_tokens"] ?? 0, "tpf": statistics["tpf"] ?? 0.0, "tps": statistics["tps"] ?? 0.0,
            "seconds": statistics["seconds"] ?? 0.0,
        ]
        let decoded = try JSONDecoder().decode(GenerationReply.self, from: try JSONSerialization.data(withJSONObject: reply))
        return LoadTestReply(decoded, firstBlockSeconds: firstBlock)
    }
}
