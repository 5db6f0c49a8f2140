/// The element types a weight can be held in.
public enum WeightDType: String, Sendable, CaseIterable, Codable {
    case f32, bf16, f16

    /// Bytes per element.
    public var size: Int { self == .f32 ? 4 : 2 }
}

/// Bytes owned by a weight that could not be used in place (a misaligned tensor, a fused
/// stack, weights converted to F32 at load). 64-byte aligned, freed with the owner.
public final class WeightStorage: @unchecked Sendable {
    // @unchecked: written once while loading, read-only afterwards.
    public let bytes: UnsafeMutableRawPointer
    public let byteCount: Int

    public init(byteCount: Int) {
        self.byteCount = max(byteCount, 1)
        bytes = UnsafeMutableRawPointer.allocate(byteCount: self.byteCount, alignment: 64)
        bytes.initializeMemory(as: UInt8.self, repeating: 0, count: self.byteCount)
    }

    deinit { bytes.deallocate() }
}

/// A `[rows, columns]` row-major weight matrix (PyTorch's `[out, in]` Linear layout) held in
/// its checkpoint dtype. It is a stack of parts, each a run of rows in one dtype living either
/// in a memory-mapped checkpoint or in owned storage, so fused projections (`q`, `k`, `v`
/// stacked) need no copy. `owners` keeps whatever the parts point into alive.
public final class WeightMatrix: @unchecked Sendable {
    // @unchecked: parts point at memory that is never written after loading.
    public struct Part: @unchecked Sendable {
        public var base: UnsafeRawPointer
        public var rows: Int
        public var dtype: WeightDType
        public init(base: UnsafeRawPointer, rows: Int, dtype: WeightDType) {
            self.base = base
            self.rows = rows
            self.dtype = dtype
        }
    }

    public let rows: Int
    public let columns: Int
    public let parts: [Part]
    private let owners: [AnyObject]
    /// Weights packed for oneDNN (int8): then there are no parts, and only products read them.
    public let packed: PackedMatmul?

    public init(parts: [Part], columns: Int, owners: [AnyObject]) {
        self.parts = parts
        self.columns = columns
        self.rows = parts.reduce(0) { $0 + $1.rows }
        self.owners = owners
        packed = nil
    }

    /// A matrix held only as a packed oneDNN product.
    public init(packed: PackedMatmul) {
        parts = []
        owners = []
        rows = packed.rows
        columns = packed.columns
        self.packed = packed
    }

    /// A matrix quantized to int8 per row and packed, from the F32 values `fill` writes (a
    /// temporary copy of `rows * columns` floats).
    public static func int8(rows: Int, columns: Int, fill: (UnsafeMutablePointer<Float>) throws -> Void) throws -> WeightMatrix {
        let floats = UnsafeMutablePointer<Float>.allocate(capacity: rows * columns)
        defer { floats.deallocate() }
        try fill(floats)
        return WeightMatrix(packed: try PackedMatmul(weights: floats, rows: rows, columns: columns, precision: .int8))
    }

    /// A matrix held as F32 in owned storage, filled by `fill` (given `rows * columns` floats).
    public static func f32(rows: Int, columns: Int, fill: (UnsafeMutablePointer<Float>) throws -> Void) rethrows -> WeightMatrix {
        let storage = WeightStorage(byteCount: rows * columns * 4)
        let floats = storage.bytes.bindMemory(to: Float.self, capacity: rows * columns)
        try fill(floats)
        return WeightMatrix(parts: [Part(base: storage.bytes, rows: rows, dtype: .f32)], columns: columns, owners: [storage])
    }

    /// A one-row F32 matrix of `values` (norm weights).
    public static func vector(_ values: UnsafePointer<Float>, count: Int) -> WeightMatrix {
        f32(rows: 1, columns: count) { $0.update(from: values, count: count) }
    }

    /// Bytes of weight data (what the matrix costs in memory once every page is touched).
    public var byteCount: Int { packed?.weightBytes ?? parts.reduce(0) { $0 + $1.rows * columns * $1.dtype.size } }

    /// The dtype of every part, or `nil` when parts differ.
    public var dtype: WeightDType? {
        let kinds = Set(parts.map(\.dtype))
        return kinds.count == 1 ? kinds.first : nil
    }

    /// The F32 data of rows `range` in place, when they lie in one F32 part.
    public func floats(rows range: Range<Int>) -> UnsafePointer<Float>? {
        var start = 0
        for part in parts {
            if range.lowerBound >= start && range.upperBound <= start + part.rows {
                guard part.dtype == .f32 else { return nil }
                return part.base.assumingMemoryBound(to: Float.self) + (range.lowerBound - start) * columns
            }
            start += part.rows
        }
        return nil
    }

    /// Writes rows `range` as F32 into `destination` (`range.count * columns` floats). Not for a
    /// packed matrix (its rows are not kept).
    public func convert(rows range: Range<Int>, into destination: UnsafeMutablePointer<Float>) {
        precondition(packed == nil, "a packed weight matrix is read only by products")
        var start = 0
        var out = destination
        for part in parts {
            let lower = max(range.lowerBound, start)
            let upper = min(range.upperBound, start + part.rows)
            if lower < upper {
                let count = (upper - lower) * columns
                let source = part.base + (lower - start) * columns * part.dtype.size
                switch part.dtype {
                case .f32: out.update(from: source.assumingMemoryBound(to: Float.self), count: count)
                case .bf16: DTypeConversion.bf16ToFloat(source.assumingMemoryBound(to: UInt16.self), out, count: count)
                case .f16: DTypeConversion.f16ToFloat(source.assumingMemoryBound(to: UInt16.self), out, count: count)
                }
                out += count
            }
            start += part.rows
        }
    }

    /// Touches every page of the weight data, so a memory-mapped matrix is read from disk now
    /// rather than during the first forward pass. Returns a value that depends on every page.
    @discardableResult
    public func prefault() -> UInt8 {
        var sum: UInt8 = 0
        for part in parts {
            let bytes = part.rows * columns * part.dtype.size
            var offset = 0
            while offset < bytes {
                sum &+= part.base.load(fromByteOffset: offset, as: UInt8.self)
                offset += 4096
            }
        }
        return sum
    }
}

/// Widening 16-bit floats to `Float`, 16 lanes at a time (AVX-512 turns each block into a
/// zero-extend and a shift; other targets get the portable SIMD lowering), scalar tail.
public enum DTypeConversion {
    /// bfloat16 is the top half of a `Float`, so widening is exact: `bits << 16`.
    @inlinable
    public static func bf16ToFloat(_ source: UnsafePointer<UInt16>, _ destination: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let half = UnsafeRawPointer(source + i).loadUnaligned(as: SIMD16<UInt16>.self)
            let wide = SIMD16<UInt32>(truncatingIfNeeded: half) &<< 16
            UnsafeMutableRawPointer(destination + i).storeBytes(of: wide, as: SIMD16<UInt32>.self)
            i += 16
        }
        while i < count {
            destination[i] = Float(bitPattern: UInt32(source[i]) << 16)
            i += 1
        }
    }

    /// IEEE half precision to `Float` (exact).
    @inlinable
    public static func f16ToFloat(_ source: UnsafePointer<UInt16>, _ destination: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            destination[i] = Float(Float16(bitPattern: source[i]))
        }
    }

    /// `Float` to bfloat16 with round-to-nearest-even (NaN stays NaN), for writing checkpoints.
    @inlinable
    public static func floatToBF16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(bits >> 16) | 0x40 }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(rounded >> 16)
    }
}
