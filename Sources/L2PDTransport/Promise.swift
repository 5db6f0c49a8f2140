import Foundation

/// A value that arrives once, from any thread, to the tasks waiting for it: the first `fulfil`
/// wins, later ones are ignored. A waiting task that is cancelled stops waiting (with
/// `CancellationError`) and leaves the promise to the others.
public final class Promise<Value: Sendable>: @unchecked Sendable {
    // @unchecked: guarded by `lock`.
    private let lock = NSLock()
    private var result: Result<Value, any Error>?
    private var waiters: [UInt64: CheckedContinuation<Value, any Error>] = [:]
    private var cancelledBeforeWaiting: Set<UInt64> = []
    private var nextWaiter: UInt64 = 0

    public init() {}

    /// Sets the outcome and wakes every waiter; false when it was already set.
    @discardableResult
    public func fulfil(_ outcome: Result<Value, any Error>) -> Bool {
        let woken = lock.withLock { () -> [CheckedContinuation<Value, any Error>]? in
            guard result == nil else { return nil }
            result = outcome
            defer { waiters = [:] }
            return Array(waiters.values)
        }
        guard let woken else { return false }
        for continuation in woken { continuation.resume(with: outcome) }
        return true
    }

    public var isFulfilled: Bool { lock.withLock { result != nil } }

    /// Waits for the outcome.
    public func value() async throws -> Value {
        let id = lock.withLock { () -> UInt64 in
            defer { nextWaiter += 1 }
            return nextWaiter
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let ready = lock.withLock { () -> Result<Value, any Error>? in
                    if let result { return result }
                    if cancelledBeforeWaiting.remove(id) != nil { return .failure(CancellationError()) }
                    waiters[id] = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            let continuation = lock.withLock { () -> CheckedContinuation<Value, any Error>? in
                if let c = waiters.removeValue(forKey: id) { return c }
                if result == nil { cancelledBeforeWaiting.insert(id) }
                return nil
            }
            continuation?.resume(throwing: CancellationError())
        }
    }
}
