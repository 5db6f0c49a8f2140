import Foundation
import L2PDDecoding
import L2PDEngine
import L2PDFilter
import L2PDModel
import L2PDTokenizer
import L2PDTransport

/// The coordinator: owns requests, the unmask policy and EoTP, and drives the workers through
/// a `NetworkPipeline` with the same decoder as single-process mode. Holds no weights: only
/// the model's config and tokenizer.
public actor Coordinator {
    public let pipeline: NetworkPipeline
    private let generator: TextGenerator
    private let filter: FilterNetwork?
    private var nextSequenceID: UInt64 = 1

    public init(modelDirectory: URL, workers: [WorkerEndpoint], filter: FilterNetwork?, timeout: Double = 60) throws {
        let config = try ModelConfig.load(from: modelDirectory.appendingPathComponent("config.json"))
        let tokenizer = try Tokenizer(contentsOf: modelDirectory.appendingPathComponent("tokenizer.json"))
        pipeline = try NetworkPipeline(
            config: config, fingerprint: try ModelFingerprint.of(directory: modelDirectory), workers: workers, timeout: timeout)
        generator = TextGenerator(tokenizer: tokenizer, pipeline: pipeline)
        self.filter = filter
    }

    /// Greets every worker and assigns its layers; fails naming the first worker that cannot serve.
    public func connect() async throws { try await pipeline.connect() }

    public func generate(_ request: GenerationRequest) async throws -> GenerationReply {
        let options = try request.options(filter: filter)
        let id = nextSequenceID
        nextSequenceID += 1
        return GenerationReply(try await generator.generate(request.prompt, raw: request.raw ?? false, options: options, sequenceID: id))
    }

    /// Serves JSON requests on `socket` forever (one at a time), on the calling thread, which
    /// must not be one of Swift's cooperative threads.
    public nonisolated func serve(on socket: ReplySocket, log: @escaping @Sendable (String) -> Void) {
        while true {
            guard let bytes = (try? socket.receive(timeout: 1)) ?? nil else { continue }
            let reply = ResultBox()
            let done = DispatchSemaphore(value: 0)
            Task {
                reply.value = await self.answer(bytes)
                done.signal()
            }
            done.wait()
            do { try socket.reply(reply.value) } catch { log("reply failed: \(error)") }
        }
    }

    /// The JSON reply to one JSON request: a `GenerationReply`, or `{"error": "..."}`.
    public func answer(_ bytes: [UInt8]) async -> [UInt8] {
        do {
            let request = try JSONDecoder().decode(GenerationRequest.self, from: Data(bytes))
            return Array(try JSONEncoder().encode(try await generate(request)))
        } catch let error as DecodingError {
            return Self.error("malformed request: \(error)")
        } catch {
            return Self.error(String(describing: error))
        }
    }

    static func error(_ text: String) -> [UInt8] {
        Array((try? JSONEncoder().encode(["error": text])) ?? Data(#"{"error":"unknown"}"#.utf8))
    }
}

final class ResultBox: @unchecked Sendable {
    var value: [UInt8] = []
}

/// `l2pd generate --coordinator URL`: one request, its reply or the coordinator's error.
public enum CoordinatorClient {
    public static func generate(_ request: GenerationRequest, url: String, timeout: Double = 600) throws -> GenerationReply {
        let socket = try RequestSocket(dialing: url)
        let bytes = try socket.request(Array(try JSONEncoder().encode(request)), timeout: timeout)
        if let reply = try? JSONDecoder().decode(GenerationReply.self, from: Data(bytes)) { return reply }
        if let error = try? JSONDecoder().decode([String: String].self, from: Data(bytes)), let text = error["error"] {
            throw ClusterError("coordinator: \(text)")
        }
        throw ClusterError("coordinator at \(url) sent an unreadable reply")
    }
}
