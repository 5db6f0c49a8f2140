/// Bounds-checked little-endian reads over one frame. Every read checks the bytes are there
/// first and throws `truncated` otherwise; nothing here can trap on any input.
struct WireReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset: Int

    init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    func need(_ count: Int, _ what: @autoclosure () -> String) throws {
        guard count >= 0, count <= remaining else {
            throw ProtocolError(.truncated, "\(what()) needs \(count) bytes at offset \(offset), the frame has \(remaining) left")
        }
    }

    @inline(__always)
    private mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: value)
    }

    mutating func u8(_ what: @autoclosure () -> String) throws -> UInt8 { try load(UInt8.self, what()) }
    mutating func u16(_ what: @autoclosure () -> String) throws -> UInt16 { try load(UInt16.self, what()) }
    mutating func u32(_ what: @autoclosure () -> String) throws -> UInt32 { try load(UInt32.self, what()) }
    mutating func u64(_ what: @autoclosure () -> String) throws -> UInt64 { try load(UInt64.self, what()) }
    mutating func f32(_ what: @autoclosure () -> String) throws -> Float { Float(bitPattern: try load(UInt32.self, what())) }

    /// Reads a reserved field of `size` bytes and requires it to be zero.
    mutating func reserved(_ size: Int, _ what: @autoclosure () -> String) throws {
        try need(size, what())
        for i in 0..<size where bytes[offset + i] != 0 {
            throw ProtocolError(.reservedNotZero, "\(what()) at offset \(offset + i) is not zero")
        }
        offset += size
    }

    /// Skips zero padding up to the next multiple of `alignment` (frame-relative).
    mutating func padding(to alignment: Int, _ what: @autoclosure () -> String) throws {
        let count = (alignment - offset % alignment) % alignment
        try reserved(count, "padding after \(what())")
    }

    mutating func skip(_ count: Int, _ what: @autoclosure () -> String) throws {
        try need(count, what())
        offset += count
    }

    /// A UTF-8 string of `count` bytes followed by padding to 8.
    mutating func text(count: Int, _ what: String) throws -> String {
        guard count <= ProtocolLimits.maxTextBytes else {
            throw ProtocolError(.limitExceeded, "\(what) of \(count) bytes exceeds \(ProtocolLimits.maxTextBytes)")
        }
        try need(count, what)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
        guard let string = String(validating: slice, as: UTF8.self) else {
            throw ProtocolError(.invalidUTF8, "\(what) is not valid UTF-8")
        }
        offset += count
        try padding(to: 8, what)
        return string
    }
}

/// Little-endian writes into a buffer the caller sized with a measuring pass (`base == nil`
/// only advances the offset). Values were validated before writing starts.
struct WireWriter {
    let base: UnsafeMutableRawPointer?
    private(set) var offset = 0

    init(base: UnsafeMutableRawPointer?) {
        self.base = base
    }

    @inline(__always)
    private mutating func store<T: FixedWidthInteger>(_ value: T) {
        if let base { base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self) }
        offset += MemoryLayout<T>.size
    }

    mutating func u8(_ value: UInt8) { store(value) }
    mutating func u16(_ value: UInt16) { store(value) }
    mutating func u32(_ value: UInt32) { store(value) }
    mutating func u64(_ value: UInt64) { store(value) }
    mutating func f32(_ value: Float) { store(value.bitPattern) }
    /// Callers guarantee `0 <= value <= UInt32.max` (checked by validation).
    mutating func u32(_ value: Int) { store(UInt32(truncatingIfNeeded: value)) }

    mutating func zeros(_ count: Int) {
        if let base, count > 0 { (base + offset).initializeMemory(as: UInt8.self, repeating: 0, count: count) }
        offset += count
    }

    mutating func padding(to alignment: Int) {
        zeros((alignment - offset % alignment) % alignment)
    }

    mutating func bytes(_ source: UnsafeRawBufferPointer) {
        if let base, let address = source.baseAddress, source.count > 0 {
            (base + offset).copyMemory(from: address, byteCount: source.count)
        }
        offset += source.count
    }

    /// UTF-8 bytes then padding to 8 (the length was written by the caller).
    mutating func text(_ string: String) {
        var copy = string
        copy.withUTF8 { bytes(UnsafeRawBufferPointer($0)) }
        padding(to: 8)
    }

    /// `values` as little-endian `f32`, one bulk copy on little-endian hosts.
    mutating func floats(_ values: [Float]) {
        #if _endian(little)
            values.withUnsafeBytes { bytes($0) }
        #else
            for v in values { f32(v) }
        #endif
    }

    /// `values` as `i32` (validated to fit).
    mutating func int32s(_ values: [Int]) {
        guard let base else {
            offset += 4 * values.count
            return
        }
        var at = base + offset
        for v in values {
            at.storeBytes(of: Int32(truncatingIfNeeded: v).littleEndian, as: Int32.self)
            at += 4
        }
        offset += 4 * values.count
    }
}

/// Read positions as maximal runs of consecutive ascending positions (section 4).
enum Runs {
    /// Calls `body(first, count)` for each run of `positions`.
    @inline(__always)
    static func forEach(_ positions: [Int], _ body: (Int, Int) -> Void) {
        var index = 0
        while index < positions.count {
            let first = positions[index]
            var count = 1
            while index + count < positions.count, positions[index + count] == first &+ count { count += 1 }
            body(first, count)
            index += count
        }
    }

    static func count(_ positions: [Int]) -> Int {
        var runs = 0
        forEach(positions) { _, _ in runs += 1 }
        return runs
    }
}

/// Padding needed after `offset` to reach a multiple of `alignment`.
@inline(__always)
func paddingCount(_ offset: Int, _ alignment: Int) -> Int { (alignment - offset % alignment) % alignment }
