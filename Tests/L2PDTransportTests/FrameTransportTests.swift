import Foundation
import Testing

@testable import L2PDTransport

/// Frames in these tests carry their key in the first 8 bytes (little-endian).
private func keyed(_ key: UInt64, _ body: [UInt8] = []) -> [UInt8] {
    withUnsafeBytes(of: key.littleEndian) { Array($0) } + body
}

private let readKey: @Sendable ([UInt8]) -> UInt64? = { frame in
    guard frame.count >= 8 else { return nil }
    return frame.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
}

/// Answers every frame on `transport` with `answer(frame)` (nil: no answer) until closed.
private func echoServer(_ transport: any FrameTransport, answer: @escaping @Sendable ([UInt8]) -> [[UInt8]]) -> Task<Void, Never> {
    Task {
        while let frame = try? await transport.receive() {
            for reply in answer(frame) { try? await transport.send(reply, timeout: 1) }
        }
    }
}

private func elapsed(_ start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

@Suite struct FrameTransportTests {
    @Test func anInMemoryLinkCarriesFramesInOrderBothWays() async throws {
        let (a, b) = InMemoryFrameTransport.pair()
        for i in 0..<5 { try await a.send([UInt8(i)], timeout: 1) }
        for i in 0..<5 { #expect(try await b.receive() == [UInt8(i)]) }
        let waiting = Task { try await a.receive() }
        try await b.send([42], timeout: 1)
        #expect(try await waiting.value == [42])
        #expect(a.isConnected && a.connectionCount == 1 && a.disconnectionCount == 0)
        a.close()
        await #expect(throws: TransportError.self) { try await a.receive() }
    }

    @Test func anInMemorySendWaitsForThePeerThenGivesUp() async throws {
        let (a, b) = InMemoryFrameTransport.pair()
        a.disconnect()
        let start = ContinuousClock.now
        await #expect(throws: TransportError(kind: .unreachable, url: a.url, detail: "no peer took the frame within 0.2 s")) {
            try await a.send([1], timeout: 0.2)
        }
        #expect(elapsed(start) >= 0.19)
        let later = Task { try await a.send([2], timeout: 5) }
        try await Task.sleep(for: .milliseconds(50))
        a.reconnect()
        try await later.value
        #expect(try await b.receive() == [2])
        #expect(a.connectionCount == 2 && a.disconnectionCount == 1)
    }

    /// Replies come back out of order and with strangers among them: each caller gets its own.
    @Test func theExchangerRoutesRepliesByKey() async throws {
        let (near, far) = InMemoryFrameTransport.pair()
        let exchanger = FrameExchanger(near, replyKey: readKey)
        // The far side answers in pairs, second request first, plus a reply nobody asked for.
        let held = HeldFrames()
        let server = echoServer(far) { frame in
            guard let first = held.swap(frame) else { return [] }
            return [keyed(999, [0]), frame + [1], first + [1]]
        }
        defer { server.cancel() }
        let replies = try await withThrowingTaskGroup(of: (UInt64, [UInt8]).self) { group in
            for key in UInt64(1)...6 {
                group.addTask { (key, try await exchanger.exchange(keyed(key, [7]), key: key, sendTimeout: 1, replyTimeout: 5)) }
            }
            var out: [UInt64: [UInt8]] = [:]
            for try await (key, reply) in group { out[key] = reply }
            return out
        }
        for key in UInt64(1)...6 { #expect(replies[key] == keyed(key, [7, 1])) }
        #expect(exchanger.pendingCount == 0)
    }

    @Test func theExchangerEndsAWaitOnTimeoutDisconnectFailureOrCancellation() async throws {
        let (near, far) = InMemoryFrameTransport.pair()
        let exchanger = FrameExchanger(near, replyKey: readKey)
        let sink = echoServer(far) { _ in [] }  // never answers
        defer { sink.cancel() }

        var start = ContinuousClock.now
        await #expect(throws: TransportError(kind: .timeout, url: near.url, detail: "no reply within 0.2 s")) {
            try await exchanger.exchange(keyed(1), key: 1, sendTimeout: 1, replyTimeout: 0.2)
        }
        #expect(elapsed(start) < 2)

        let lost = Task { try await exchanger.exchange(keyed(2), key: 2, sendTimeout: 1, replyTimeout: 30) }
        try await Task.sleep(for: .milliseconds(50))
        start = ContinuousClock.now
        near.disconnect()
        await #expect(throws: TransportError.self) { try await lost.value }
        #expect(elapsed(start) < 1)
        near.reconnect()

        struct Doomed: Error {}
        let watched = Task { try await exchanger.exchange(keyed(3), key: 3, sendTimeout: 1, replyTimeout: 30, watching: true) }
        let unwatched = Task { try await exchanger.exchange(keyed(4), key: 4, sendTimeout: 1, replyTimeout: 0.5) }
        try await Task.sleep(for: .milliseconds(50))
        exchanger.failAll(Doomed(), onlyWatching: true)
        await #expect(throws: Doomed.self) { try await watched.value }
        await #expect(throws: TransportError.self) { try await unwatched.value }  // its own timeout, not Doomed

        let cancelled = Task { try await exchanger.exchange(keyed(5), key: 5, sendTimeout: 1, replyTimeout: 30) }
        try await Task.sleep(for: .milliseconds(50))
        start = ContinuousClock.now
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        #expect(elapsed(start) < 1)
        #expect(exchanger.pendingCount == 0)
    }

    /// The nng pair socket behind the same protocol: frames both ways, an unreachable peer
    /// named after the send timeout, a receive that ends when cancelled or closed.
    @Test func aPairSocketSendsReceivesAndEndsWaitsWithoutPolling() async throws {
        let url = "inproc://pair-\(UUID().uuidString)"
        let listener = try PairSocket.listen(url, maxMessageBytes: 1 << 20)
        defer { listener.close() }
        let start = ContinuousClock.now
        await #expect(throws: TransportError.self) { try await listener.send([1], timeout: 0.2) }  // nobody dialled yet
        #expect(elapsed(start) >= 0.15)

        let dialer = try PairSocket.dial(url, maxMessageBytes: 1 << 20)
        let events = EventLog()
        listener.onConnectionChange { events.add($0) }
        try await dialer.send(Array(repeating: 7, count: 100_000), timeout: 2)
        #expect(try await listener.receive() == Array(repeating: 7, count: 100_000))
        try await listener.send([9, 9], timeout: 2)
        #expect(try await dialer.receive() == [9, 9])
        #expect(listener.isConnected && dialer.isConnected)

        let waiting = Task { try await dialer.receive() }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }

        let closing = Task { try await listener.receive() }
        try await Task.sleep(for: .milliseconds(50))
        dialer.close()
        try await Task.sleep(for: .milliseconds(100))
        #expect(!listener.isConnected && listener.disconnectionCount == 1)
        #expect(events.all.last == .disconnected && events.all.filter { $0 == .disconnected }.count == 1, "\(events.all)")
        listener.close()
        await #expect(throws: TransportError(kind: .closed, url: url, detail: "closed")) { try await closing.value }
    }

    /// The request/reply sockets: concurrent requests on one client socket each get their own
    /// reply (per-request contexts and timeouts), and a silent server times out one request
    /// without disturbing the others.
    @Test func requestsAndRepliesRunConcurrentlyWithTheirOwnTimeouts() async throws {
        let url = "inproc://reply-\(UUID().uuidString)"
        let server = try ReplyServer(listening: url)
        let serving = Task {
            try await server.serve(contexts: 4) { request in
                if request == [0] { try? await Task.sleep(for: .seconds(2)) }  // the slow one
                return request.reversed()
            }
        }
        defer {
            server.close()
            serving.cancel()
        }
        let client = try RequestSocket(dialing: url)
        let replies = try await withThrowingTaskGroup(of: (Int, Result<[UInt8], any Error>).self) { group in
            group.addTask { (0, await Result(catching: { try await client.request([0], timeout: 0.3) })) }
            for i in 1...6 {
                group.addTask { (i, await Result(catching: { try await client.request([UInt8(i), 0xff], timeout: 5) })) }
            }
            var out: [Int: Result<[UInt8], any Error>] = [:]
            for try await (i, r) in group { out[i] = r }
            return out
        }
        #expect(throws: TransportError.self) { try replies[0]!.get() }
        for i in 1...6 { #expect(try replies[i]!.get() == [0xff, UInt8(i)]) }
        await #expect(throws: TransportError.self) {
            try await RequestSocket(dialing: "inproc://nobody-\(UUID().uuidString)").request([1], timeout: 1, connectTimeout: 0.2)
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

private final class HeldFrames: @unchecked Sendable {
    private let lock = NSLock()
    private var held: [UInt8]?
    /// Holds `frame` and returns nil, or returns the one held before (and holds none).
    func swap(_ frame: [UInt8]) -> [UInt8]? {
        lock.withLock {
            if let first = held {
                held = nil
                return first
            }
            held = frame
            return nil
        }
    }
}

private final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [ConnectionEvent] = []
    func add(_ e: ConnectionEvent) { lock.withLock { events.append(e) } }
    var all: [ConnectionEvent] { lock.withLock { events } }
}
