/// An owned, 64-byte aligned, contiguous `Float` buffer for weights and scratch space.
/// Scratch buffers grow with `reserve` and are reused across steps, so the hot loop
/// allocates nothing once the largest shape has been seen.
public final class FloatBuffer {
    public private(set) var pointer: UnsafeMutablePointer<Float>
    public private(set) var capacity: Int

    public init(capacity: Int) {
        self.capacity = max(capacity, 1)
        self.pointer = FloatBuffer.allocate(self.capacity)
    }

    /// A buffer holding a copy of `values`.
    public convenience init(_ values: [Float]) {
        self.init(capacity: values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    /// Makes room for at least `count` floats. Contents are not preserved when it grows.
    public func reserve(_ count: Int) {
        guard count > capacity else { return }
        UnsafeMutableRawPointer(pointer).deallocate()
        capacity = max(count, capacity + capacity / 2)
        pointer = FloatBuffer.allocate(capacity)
    }

    public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointer, count: capacity)
    }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: count * MemoryLayout<Float>.stride, alignment: 64)
        return raw.initializeMemory(as: Float.self, repeating: 0, count: count)
    }
}
