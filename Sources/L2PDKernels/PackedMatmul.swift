import CDNNLMatmul
import Foundation

/// A product `y[m, n] = x[m, k] · W[n, k]^T` whose weights oneDNN packed once for this CPU, in
/// f32 or int8. int8 holds the weights symmetric per output row (`W ≈ scale[r] · q[r]`),
/// quantizes each row of `x` the same way at every product, accumulates in int32 and writes
/// f32; on CPUs with VNNI (AVX-512 or AVX2) that runs at several times the f32 rate. oneDNN
/// chooses the instruction set when the product is made (`implementation` names it).
/// One product at a time per object (it keeps scratch and per-`m` kernels); a lock enforces it.
public final class PackedMatmul: @unchecked Sendable {
    public enum Precision: String, Sendable, CaseIterable { case f32, int8 }

    // @unchecked: `handle` is used only under `lock`.
    private let handle: OpaquePointer
    private let lock = NSLock()
    public let precision: Precision
    public let rows: Int
    public let columns: Int

    /// Packs f32 weights `[rows, columns]`, quantizing them first for `.int8`.
    public convenience init(weights: UnsafePointer<Float>, rows: Int, columns: Int, precision: Precision) throws {
        switch precision {
        case .f32:
            try self.init(rows: rows, columns: columns, precision: .f32) { error in
                l2pd_matmul_create_f32(weights, Int64(rows), Int64(columns), error, 256)
            }
        case .int8:
            var q = [Int8](repeating: 0, count: rows * columns)
            var scales = [Float](repeating: 0, count: rows)
            PackedMatmul.quantize(weights, rows: rows, columns: columns, levels: PackedMatmul.weightLevels, into: &q, scales: &scales)
            try self.init(int8: q, scales: scales, rows: rows, columns: columns)
        }
    }

    /// Packs int8 weights `[rows, columns]` with one scale per row.
    public convenience init(int8 q: [Int8], scales: [Float], rows: Int, columns: Int) throws {
        precondition(q.count == rows * columns && scales.count == rows, "int8 weights and scales must match the shape")
        try self.init(rows: rows, columns: columns, precision: .int8) { error in
            l2pd_matmul_create_s8(q, scales, Int64(rows), Int64(columns), error, 256)
        }
    }

    private init(rows: Int, columns: Int, precision: Precision, make: (UnsafeMutablePointer<CChar>) -> OpaquePointer?) throws {
        precondition(rows > 0 && columns > 0, "a product needs a non-empty weight matrix")
        var error = [CChar](repeating: 0, count: 256)
        guard let handle = error.withUnsafeMutableBufferPointer({ make($0.baseAddress!) }) else {
            throw KernelError("cannot make a \(precision.rawValue) product of \(rows)x\(columns): \(cText(error))")
        }
        self.handle = handle
        self.precision = precision
        self.rows = rows
        self.columns = columns
    }

    deinit { l2pd_matmul_free(handle) }

    /// The oneDNN implementation chosen (`brg:avx512_core_vnni`, `gemm:jit`, ...).
    public var implementation: String { String(cString: l2pd_matmul_implementation(handle)) }
    /// Bytes of the packed weights.
    public var weightBytes: Int { Int(l2pd_matmul_weight_bytes(handle)) }

    /// `y[m, rows] = x[m, columns] · W^T` with contiguous rows, on `threads` threads.
    public func multiply(_ x: UnsafePointer<Float>, m: Int, into y: UnsafeMutablePointer<Float>, threads: Int) throws {
        guard m > 0 else { return }
        var error = [CChar](repeating: 0, count: 256)
        let status = lock.withLock { l2pd_matmul_run(handle, x, Int64(m), y, Int32(max(0, threads)), &error, error.count) }
        guard status == 0 else { throw KernelError("product of \(m) rows failed: \(cText(error))") }
    }

    /// Symmetric int8 quantization per row: `scale = max|w| / levels` (1 for a zero row),
    /// `q = round(w / scale)` to nearest even, within [-levels, levels].
    public static func quantize(
        _ w: UnsafePointer<Float>, rows: Int, columns: Int, levels: Int = 127, into q: inout [Int8], scales: inout [Float]
    ) {
        precondition(q.count >= rows * columns && scales.count >= rows && (1...127).contains(levels))
        l2pd_quantize_rows(w, Int64(rows), Int64(columns), Int32(levels), &q, &scales)
    }

    /// Weight levels int8 products use on this CPU: 127 with VNNI, 63 without (oneDNN's
    /// non-VNNI int8 kernels sum pairs of products in 16 bits, which full-range weights overflow).
    public static var weightLevels: Int { Int(l2pd_matmul_weight_levels()) }
}

/// A kernel that could not be made or run, with the facts.
public struct KernelError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

private func cText(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
