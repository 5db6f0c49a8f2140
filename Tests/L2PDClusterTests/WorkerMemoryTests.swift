import Foundation
import L2PDDefaultModel
import L2PDModel
import L2PDStageIO
import Testing

@testable import L2PDCluster

/// Workers report the bytes of weights and K/V caches they hold in every heartbeat answer, and
/// the coordinator shows them per worker.
@Suite struct WorkerMemoryTests {
    @Test func heartbeatsCarryEachWorkersWeightAndCacheBytes() async throws {
        let tolerance = FaultTolerance(retryWindow: 10, heartbeatInterval: 0.05, heartbeatMisses: 20)
        let cluster = try InMemoryCluster(count: 2, faultTolerance: tolerance)
        defer { cluster.stop() }
        try await cluster.pipeline.connect()
        let length = 8
        let sequence = SequenceForward(sequenceID: 1, length: length, cache: .refresh, readPositions: [length - 1])
        _ = try await cluster.pipeline.forward([sequence], tokens: Array(repeating: 5, count: length))

        let checkpoint = try Checkpoint(directory: try #require(DefaultModel.directory))
        let kvBytesPerLayer = 2 * length * checkpoint.config.kvDimension * MemoryLayout<Float>.size
        func reported() -> Bool {
            cluster.pipeline.workerStatuses.allSatisfy { ($0.cacheBytes ?? 0) > 0 }
        }
        let start = ContinuousClock.now
        while !reported() && ContinuousClock.now - start < .seconds(5) { try await Task.sleep(for: .milliseconds(20)) }
        let statuses = cluster.pipeline.workerStatuses
        #expect(statuses.count == 2)
        for status in statuses {
            let weights = try StageWeights(checkpoint: checkpoint, layers: status.layers, format: .native)
            #expect(status.weightBytes == UInt64(weights.byteCount), "\(status.url)")
            #expect(status.cacheBytes == UInt64(status.layers.count * kvBytesPerLayer), "\(status.url)")
        }

        // Released caches show as zero at the next heartbeats.
        await cluster.pipeline.release(1)
        let released = ContinuousClock.now
        while cluster.pipeline.workerStatuses.contains(where: { $0.cacheBytes != 0 }) && ContinuousClock.now - released < .seconds(5) {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(cluster.pipeline.workerStatuses.map(\.cacheBytes) == [0, 0])
    }
}
