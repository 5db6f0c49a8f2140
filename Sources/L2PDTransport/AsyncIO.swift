import CNNG
import Foundation

/// One nng asynchronous operation (an `nng_aio`) whose completion runs a callback on nng's
/// thread: nothing waits and nothing polls. `cancel` asks nng to end it early (it then completes
/// with `NNG_ECANCELED`).
final class AioCall: @unchecked Sendable {
    // @unchecked: every field is guarded by `lock`.
    private let lock = NSLock()
    private let finish: @Sendable (OpaquePointer?, Int32) -> Void
    private var aio: OpaquePointer?
    private var cancelled = false
    private var done = false

    private init(finish: @escaping @Sendable (OpaquePointer?, Int32) -> Void) { self.finish = finish }

    /// Runs `start` on a fresh aio (with `timeout` seconds, or none); once nng completes it,
    /// `finish` runs on nng's callback thread with the aio and its result code (the aio is nil
    /// when none could be allocated). `finish` must take ownership of any message left in the
    /// aio, and must not block.
    @discardableResult
    static func start(
        timeout: Double? = nil, _ start: (OpaquePointer) -> Void, finish: @escaping @Sendable (OpaquePointer?, Int32) -> Void
    ) -> AioCall {
        let call = AioCall(finish: finish)
        let context = Unmanaged.passRetained(call).toOpaque()
        var aio: OpaquePointer? = nil
        let callback: @convention(c) (UnsafeMutableRawPointer?) -> Void = { context in
            guard let context else { return }
            Unmanaged<AioCall>.fromOpaque(context).takeRetainedValue().complete()
        }
        guard nng_aio_alloc(&aio, callback, context) == 0, let aio else {
            Unmanaged<AioCall>.fromOpaque(context).release()
            call.lock.withLock { call.done = true }
            finish(nil, Int32(NNG_ENOMEM.rawValue))
            return call
        }
        if let timeout { nng_aio_set_timeout(aio, nng_duration(max(1, min(timeout * 1000, 86_400_000)))) }
        call.lock.withLock { call.aio = aio }
        start(aio)  // may complete at once, on nng's thread
        // A cancellation that came before the start found nothing to cancel.
        call.lock.withLock { if call.cancelled && !call.done { nng_aio_cancel(aio) } }
        return call
    }

    func cancel() {
        lock.withLock {
            cancelled = true
            if let aio, !done { nng_aio_cancel(aio) }  // completion follows on nng's thread
        }
    }

    /// Called once by nng when the operation completes, fails, times out or is cancelled.
    private func complete() {
        let aio = lock.withLock { () -> OpaquePointer? in
            done = true
            return self.aio
        }
        guard let aio else { return }
        finish(aio, nng_aio_result(aio))
        nng_aio_reap(aio)  // freed on nng's reaper: an aio cannot be freed from its own callback
    }
}

/// `AioCall` for a waiting task: suspends until the operation completes and returns what
/// `finish` made of it. Cancelling the task cancels the operation.
enum AsyncIO {
    static func run<T: Sendable>(
        timeout: Double? = nil, start: (OpaquePointer) -> Void, finish: @escaping @Sendable (OpaquePointer?, Int32) -> T
    ) async -> T {
        let handle = CancelHandle()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                handle.set(
                    AioCall.start(timeout: timeout, start) { aio, rv in continuation.resume(returning: finish(aio, rv)) }.cancel)
            }
        } onCancel: {
            handle.cancel()
        }
    }
}

/// Holds how to cancel an operation that may not have started yet: a cancellation that comes
/// first is applied as soon as the operation is set.
public final class CancelHandle: @unchecked Sendable {
    // @unchecked: guarded by `lock`.
    private let lock = NSLock()
    private var action: (@Sendable () -> Void)?
    private var cancelled = false

    public init() {}

    public func set(_ cancel: @escaping @Sendable () -> Void) {
        let now = lock.withLock { () -> Bool in
            action = cancel
            return cancelled
        }
        if now { cancel() }
    }

    public func cancel() {
        let action = lock.withLock { () -> (@Sendable () -> Void)? in
            cancelled = true
            return self.action
        }
        action?()
    }
}
