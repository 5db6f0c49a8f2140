import Foundation

/// Runs one operation at a time; callers that arrive while it runs wait for it and share its
/// outcome instead of starting another.
actor SingleFlight {
    private var running: Task<Void, any Error>?

    func run(_ operation: @escaping @Sendable () async throws -> Void) async throws {
        if let running { return try await running.value }
        let task = Task { try await operation() }
        running = task
        defer { running = nil }
        try await task.value
    }
}
