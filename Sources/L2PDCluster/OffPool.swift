import Dispatch

/// Runs blocking or CPU-heavy work (tokenizing, blocking C calls) on a Dispatch queue, off
/// Swift's cooperative pool, and returns its result.
public enum OffPool {
    static let queue = DispatchQueue(label: "l2pd.off-pool", attributes: .concurrent)

    public static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }
}
