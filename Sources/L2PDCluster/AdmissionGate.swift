import Foundation

/// How many requests a coordinator decodes at once and how many may wait for a turn; a request
/// beyond both is refused at once with a "busy" error.
public struct AdmissionLimits: Sendable, Equatable {
    public var concurrent: Int
    public var queued: Int
    /// Forward batches in flight at once (nil: two per worker, which measured best on a 2-worker
    /// loopback cluster; one per worker left bubbles). Forwards beyond that wait and leave
    /// together as one batch.
    public var batchesInFlight: Int?
    public init(concurrent: Int = 8, queued: Int = 32, batchesInFlight: Int? = nil) {
        self.concurrent = max(1, concurrent)
        self.queued = max(0, queued)
        self.batchesInFlight = batchesInFlight.map { max(1, $0) }
    }
}

/// Decoding slots: `admit` takes one or waits in a bounded line for one, `leave` hands it on.
public actor AdmissionGate {
    public nonisolated let limits: AdmissionLimits
    public private(set) var running = 0
    public private(set) var refused = 0
    /// Set when the server is shutting down: new requests are refused, those admitted finish.
    public private(set) var draining = false
    private var line: [(id: UInt64, turn: CheckedContinuation<Void, any Error>)] = []
    private var nextInLine: UInt64 = 0
    private var idleWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    private var nextIdleWaiter: UInt64 = 0

    public init(limits: AdmissionLimits) { self.limits = limits }

    public var waiting: Int { line.count }

    /// Returns holding a slot; throws `CoordinatorBusy` at once when every slot and place in line
    /// is taken, `CoordinatorDraining` once the server is shutting down, `CancellationError` when
    /// the calling task is cancelled while it waits in line (its place is given up).
    public func admit() async throws {
        if draining { throw CoordinatorDraining() }
        if running < limits.concurrent {
            running += 1
            return
        }
        guard line.count < limits.queued else {
            refused += 1
            throw CoordinatorBusy(limits: limits)
        }
        let id = nextInLine
        nextInLine += 1
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (turn: CheckedContinuation<Void, any Error>) in
                if Task.isCancelled { return turn.resume(throwing: CancellationError()) }
                line.append((id, turn))  // `leave` hands its slot over
            }
        } onCancel: {
            Task { await self.leaveLine(id) }
        }
    }

    private func leaveLine(_ id: UInt64) {
        guard let place = line.firstIndex(where: { $0.id == id }) else { return }
        line.remove(at: place).turn.resume(throwing: CancellationError())
        wakeIdleWaiters()
    }

    public func leave() {
        if line.isEmpty {
            running -= 1
        } else {
            line.removeFirst().turn.resume()
        }
        wakeIdleWaiters()
    }

    private func wakeIdleWaiters() {
        guard idle else { return }
        for waiter in idleWaiters.values { waiter.resume() }
        idleWaiters = [:]
    }

    /// Returns once no request is running or waiting, or when the calling task is cancelled.
    public func waitUntilIdle() async {
        if idle || Task.isCancelled { return }
        let id = nextIdleWaiter
        nextIdleWaiter += 1
        await withTaskCancellationHandler {
            await withCheckedContinuation { idleWaiters[id] = $0 }
        } onCancel: {
            Task { await self.stopWaiting(id) }
        }
    }

    private func stopWaiting(_ id: UInt64) { idleWaiters.removeValue(forKey: id)?.resume() }

    /// Refuses new requests from now on; those running or waiting in line still get served.
    public func startDraining() { draining = true }

    /// No request running or waiting.
    public var idle: Bool { running == 0 && line.isEmpty }
}
