import Foundation
import L2PDDecoding

/// A cluster file: the model, where the coordinator listens for clients, and the workers with
/// their layer ranges (or none, for an even split).
///
///     {"model": "default", "listen": "tcp://127.0.0.1:7700",
///      "workers": [{"url": "tcp://127.0.0.1:7701", "layers": [0, 2]},
///                  {"url": "tcp://127.0.0.1:7702", "layers": [2, 4]}]}
public struct ClusterDescription: Sendable, Equatable {
    public struct Worker: Sendable, Equatable, Decodable {
        public var url: String
        /// `[first, end)`; nil for an even split over the workers.
        public var layers: [Int]?
    }
    /// A checkpoint directory, or "default" for the embedded model.
    public var model: String
    public var listen: String
    public var workers: [Worker]

    public static func load(_ url: URL) throws -> ClusterDescription {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ClusterError("\(url.path): cannot read cluster file", class: .invalidRequest)
        }
        struct File: Decodable {
            var model: String?
            var listen: String?
            var workers: [Worker]
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
        return ClusterDescription(model: file.model ?? "default", listen: file.listen ?? "tcp://127.0.0.1:7700", workers: file.workers)
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
        do { try LayerPlan.validate(ranges, layers: layers) } catch { throw ClusterError("layer ranges: \(error)", class: .invalidRequest) }
        return zip(workers, ranges).map { WorkerEndpoint(url: $0.url, layers: $1) }
    }
}
