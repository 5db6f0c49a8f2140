import Foundation
import L2PDDecoding

/// What a coordinator serves through: the decoder's `Pipeline` plus what `/health` and
/// `/metrics` report. A cluster's `NetworkPipeline`, or an `InProcessPipeline` (no workers).
public protocol ServingPipeline: Pipeline {
    /// Workers behind the pipeline (0 when the model runs in this process).
    var workerCount: Int { get }
    /// Workers with a live connection now.
    var connectedWorkers: Int { get }
    var statistics: WireStatistics { get }
    /// Lost workers, retried passes and moved sequences so far.
    var faultCounters: FaultCounters { get }
    /// Each worker's state, in the order they were given.
    var workerStatuses: [WorkerStatus] { get }
    /// Whether every stage has a worker that can serve now.
    var canServe: Bool { get }
    /// Bytes of weights held in this process (nil: the workers hold them).
    var heldWeightBytes: Int? { get }
    /// Readies every stage (greets and assigns workers); fails naming the first that cannot serve.
    func connect() async throws
    func close()
}

extension InProcessPipeline: ServingPipeline {
    public var workerCount: Int { 0 }
    public var connectedWorkers: Int { 0 }
    public var statistics: WireStatistics { WireStatistics() }
    public var faultCounters: FaultCounters { FaultCounters() }
    public var workerStatuses: [WorkerStatus] { [] }
    public var canServe: Bool { true }
    public var heldWeightBytes: Int? { weightBytes }
    public func connect() async throws {}
    public func close() {}
}

extension ServingPipeline {
    /// `connect`, tried again while workers are still starting, for at most `seconds`; the last
    /// failure is thrown when time runs out.
    public func connect(within seconds: Double) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(max(0, min(seconds, 86_400)) * 1000))
        while true {
            do { return try await connect() } catch {
                if ContinuousClock.now >= deadline { throw error }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}
