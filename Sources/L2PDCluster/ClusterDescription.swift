import Foundation
import L2PDDecoding
import L2PDTransport

/// A cluster file: the model, where the coordinator listens for clients, the workers with
/// their layer ranges (or none, for an even split; workers given the same range are replicas of
/// one stage), and optionally the secret coordinator and workers prove to each other.
///
///     {"model": "default", "listen": "tcp://127.0.0.1:7700", "secret": "...",
///      "workers": [{"url": "tcp://127.0.0.1:7701", "layers": [0, 2]},
///                  {"url": "tcp://127.0.0.1:7702", "layers": [2, 4]}]}
///
/// Workers at `tls+tcp://` URLs need a `tls` object: the CA that signed the workers'
/// certificates, and the coordinator's own certificate and key for workers that require one:
///
///     "tls": {"ca": "certs/ca.pem", "certificate": "certs/coordinator.pem", "key": "certs/coordinator.key"}
///
/// Passes are chained (each worker sends its hidden states straight to the next stage, so
/// workers must reach each other at their URLs); `"links": "relay"` sends every stage's output
/// back through the coordinator instead.
///
/// Relative paths are relative to the cluster file.
public struct ClusterDescription: Sendable, Equatable {
    public struct Worker: Sendable, Equatable, Decodable {
        public var url: String
        /// `[first, end)`; nil for an even split over the workers.
        public var layers: [Int]?
        /// Where earlier stages reach it in chained passes (nil: `StageAddress.derived(from: url)`).
        public var stageURL: String?

        enum CodingKeys: String, CodingKey {
            case url, layers
            case stageURL = "stage_url"
        }
    }
    /// A checkpoint directory, or "default" for the embedded model.
    public var model: String
    public var listen: String
    public var workers: [Worker]
    /// The shared cluster secret (nil: `L2PD_CLUSTER_TOKEN`, or none).
    public var secret: String? = nil
    /// TLS files for `tls+tcp://` workers (paths resolved against the cluster file's folder).
    public var tls: TLSFiles? = nil
    /// How passes travel between stages.
    public var links: StageLinks = .chained

    public static func load(_ url: URL) throws -> ClusterDescription {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ClusterError("\(url.path): cannot read cluster file", class: .invalidRequest)
        }
        struct File: Decodable {
            var model: String?
            var listen: String?
            var workers: [Worker]
            var secret: String?
            var tls: TLSFiles?
            var links: String?
        }
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch {
            throw ClusterError("\(url.path): not a cluster description (\(error))", class: .invalidRequest)
        }
        guard !file.workers.isEmpty else { throw ClusterError("\(url.path): 'workers' is empty", class: .invalidRequest) }
        let withLayers = file.workers.filter { $0.layers != nil }.count
        guard withLayers == 0 || withLayers == file.workers.count else {
            throw ClusterError("\(url.path): give 'layers' for every worker or for none", class: .invalidRequest)
        }
        for w in file.workers where w.layers != nil && w.layers!.count != 2 {
            throw ClusterError("\(url.path): worker \(w.url): 'layers' must be [first, end]", class: .invalidRequest)
        }
        guard Set(file.workers.map(\.url)).count == file.workers.count else {
            throw ClusterError("\(url.path): a worker url appears twice", class: .invalidRequest)
        }
        if let secret = file.secret, secret.isEmpty {
            throw ClusterError("\(url.path): 'secret' is empty (leave it out for none)", class: .invalidRequest)
        }
        let tlsWorkers = file.workers.filter { TLSConfiguration.isTLS($0.url) }
        if !tlsWorkers.isEmpty && file.tls?.ca == nil {
            throw ClusterError(
                "\(url.path): worker \(tlsWorkers[0].url) uses TLS: give \"tls\": {\"ca\": FILE} (the CA that signed its certificate)",
                class: .invalidRequest)
        }
        if tlsWorkers.isEmpty && file.tls != nil {
            throw ClusterError("\(url.path): 'tls' is given, but no worker url is tls+tcp://", class: .invalidRequest)
        }
        var links = StageLinks.chained
        if let name = file.links {
            guard let mode = StageLinks(rawValue: name) else {
                throw ClusterError("\(url.path): 'links' must be \"chained\" or \"relay\", got \"\(name)\"", class: .invalidRequest)
            }
            links = mode
        }
        let folder = url.deletingLastPathComponent()
        func resolve(_ path: String?) -> String? {
            guard let path else { return nil }
            return path.hasPrefix("/") ? path : folder.appendingPathComponent(path).path
        }
        let tls = file.tls.map { TLSFiles(ca: resolve($0.ca), certificate: resolve($0.certificate), key: resolve($0.key)) }
        return ClusterDescription(
            model: file.model ?? "default", listen: file.listen ?? "tcp://127.0.0.1:7700", workers: file.workers, secret: file.secret,
            tls: tls, links: links)
    }

    /// Layer ranges per worker, checked to cover `layers` exactly once.
    public func endpoints(layers: Int) throws -> [WorkerEndpoint] {
        let ranges: [Range<Int>]
        if workers.allSatisfy({ $0.layers == nil }) {
            guard workers.count <= layers else {
                throw ClusterError("\(workers.count) workers for a model of \(layers) layers", class: .invalidRequest)
            }
            ranges = LayerPlan.even(layers: layers, stages: workers.count)
        } else {
            ranges = try workers.map {
                guard let l = $0.layers, l[0] >= 0, l[0] < l[1] else {
                    throw ClusterError("worker \($0.url): bad layer range", class: .invalidRequest)
                }
                return l[0]..<l[1]
            }
        }
        let endpoints = zip(workers, ranges).map { WorkerEndpoint(url: $0.url, layers: $1, stageURL: $0.stageURL) }
        do { _ = try NetworkPipeline.stages(of: endpoints, layers: layers) } catch {
            throw ClusterError("layer ranges (replicas share one range exactly): \(error)", class: .invalidRequest)
        }
        return endpoints
    }
}

/// The cluster secret from the environment (`L2PD_CLUSTER_TOKEN`), when set and not empty.
public enum ClusterSecret {
    public static var fromEnvironment: String? {
        ProcessInfo.processInfo.environment["L2PD_CLUSTER_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }
}
