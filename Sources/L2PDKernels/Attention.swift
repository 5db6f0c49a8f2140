import CAttention
import CElementwise
import Foundation

/// Rotary position embedding in the "rotate half" form used by LLaMA and LLaDA:
/// `inv_freq[i] = theta^(-2i/h)`, angles `[freqs, freqs]`, `x' = x cos + rotate_half(x) sin`
/// with `rotate_half([a, b]) = [-b, a]`. Tables are computed in `Double` once and stored as
/// `Float`, so applying them is a table lookup.
public struct RotaryTable: Sendable {
    public let headDimension: Int
    public let positions: Int
    /// `cos` and `sin` of each angle, `[positions, headDimension / 2]` row-major.
    private let cosines: [Float]
    private let sines: [Float]

    public init(headDimension: Int, theta: Double, positions: Int) {
        precondition(headDimension % 2 == 0, "rotary head dimension must be even")
        let half = headDimension / 2
        self.headDimension = headDimension
        self.positions = positions
        var cosines = [Float](repeating: 0, count: positions * half)
        var sines = [Float](repeating: 0, count: positions * half)
        for i in 0..<half {
            let inverseFrequency = 1 / Foundation.pow(theta, Double(2 * i) / Double(headDimension))
            for p in 0..<positions {
                let angle = Double(p) * inverseFrequency
                cosines[p * half + i] = Float(Foundation.cos(angle))
                sines[p * half + i] = Float(Foundation.sin(angle))
            }
        }
        self.cosines = cosines
        self.sines = sines
    }

    /// Rotates `heads` heads of each of `rows` rows in place; row `r` sits at sequence
    /// position `positions[r]`. The rotation runs in `CElementwise` (AVX-512, AVX2 or portable).
    public func apply(
        _ x: UnsafeMutablePointer<Float>, rows: Int, rowStride: Int, heads: Int,
        positions rowPositions: UnsafePointer<Int>
    ) {
        let half = headDimension / 2
        cosines.withUnsafeBufferPointer { cosTable in
            sines.withUnsafeBufferPointer { sinTable in
                for r in 0..<rows {
                    let p = rowPositions[r]
                    precondition(p >= 0 && p < positions, "position \(p) outside the rotary table")
                    let c = cosTable.baseAddress! + p * half
                    let s = sinTable.baseAddress! + p * half
                    l2pd_rotary(x + r * rowStride, Int64(heads), Int64(half), c, s)
                }
            }
        }
    }
}

/// Bidirectional (unmasked) multi-head attention with grouped K/V heads, on row-major
/// buffers. Queries are the positions computed this pass; keys and values are every position
/// of the sequence, fresh or cached, so the same kernel serves full passes and cached steps.
public enum Attention {
    /// `output[r, head h] = softmax(q_h k_g^T / sqrt(d)) v_g` for every query row `r`, where
    /// query head `h` reads K/V head `g = h / (heads / kvHeads)`.
    ///
    /// - `queries`: `[queryRows, heads * headDimension]` with row stride `queryStride`.
    /// - `keys`, `values`: `[keyRows, kvHeads * headDimension]` with row stride `kvStride`.
    /// - `scores`: scratch of at least `queryRows * keyRows` floats.
    /// - `onlyHeads`: compute just these query heads (to split heads across threads).
    public static func forward(
        queries: UnsafePointer<Float>, queryStride: Int, queryRows: Int,
        keys: UnsafePointer<Float>, values: UnsafePointer<Float>, kvStride: Int, keyRows: Int,
        heads: Int, kvHeads: Int, headDimension: Int,
        output: UnsafeMutablePointer<Float>, outputStride: Int,
        scores: UnsafeMutablePointer<Float>, onlyHeads: Range<Int>? = nil
    ) {
        precondition(heads % kvHeads == 0, "query heads must be a multiple of K/V heads")
        let group = heads / kvHeads
        let scale = 1 / Float(headDimension).squareRoot()
        // Query tiles keep each score block (tile x keyRows) in cache between the two
        // products and the softmax, instead of streaming a full keyRows^2 matrix.
        let tile = max(16, min(queryRows, (256 * 1024) / max(keyRows, 1)))
        withUnsafeTemporaryAllocation(of: Float.self, capacity: tile) { inverseSums in
            for h in onlyHeads ?? 0..<heads {
                let g = h / group
                var row = 0
                while row < queryRows {
                    let rows = min(tile, queryRows - row)
                    BLAS.gemm(
                        transposeB: true, m: rows, n: keyRows, k: headDimension, alpha: scale,
                        a: queries + row * queryStride + h * headDimension, lda: queryStride,
                        b: keys + g * headDimension, ldb: kvStride,
                        c: scores, ldc: keyRows)
                    // Softmax without its division: the 1/sum of each row scales the row's
                    // headDimension outputs after the product instead of its keyRows weights.
                    for r in 0..<rows {
                        let scoreRow = scores + r * keyRows
                        let top = VectorMath.max(scoreRow, count: keyRows)
                        inverseSums[r] = 1 / VectorMath.expShifted(scoreRow, count: keyRows, shift: top)
                    }
                    let out = output + row * outputStride + h * headDimension
                    BLAS.gemm(
                        transposeB: false, m: rows, n: headDimension, k: keyRows,
                        a: scores, lda: keyRows,
                        b: values + g * headDimension, ldb: kvStride,
                        c: out, ldc: outputStride)
                    for r in 0..<rows { VectorMath.scale(out + r * outputStride, count: headDimension, by: inverseSums[r]) }
                    row += rows
                }
            }
        }
    }

    /// Precision of attention's two products (scores and the weighted sum of values).
    public enum Precision: String, Sendable {
        /// F32 products on OpenBLAS: the reference path, on every CPU.
        case f32
        /// Queries, keys, values and softmax weights rounded to BF16, products accumulated in
        /// F32 on AVX-512 BF16; the softmax stays F32. About twice as fast as `f32` at 512
        /// positions; for CPUs that have it and head widths that are multiples of 16.
        case bf16
    }

    /// Whether `bf16` products run on this CPU for heads `headDimension` wide (`L2PD_KERNELS=
    /// portable` or `avx2` turns them off).
    public static func supportsBF16(headDimension: Int) -> Bool {
        headDimension > 0 && headDimension % 16 == 0 && l2pd_attention_bf16_available() != 0
    }

    /// Bytes of scratch `forwardBF16` needs for one head of these sizes.
    public static func bf16ScratchBytes(queryRows: Int, keyRows: Int, headDimension: Int) -> Int {
        Int(l2pd_attention_bf16_scratch_bytes(Int64(queryRows), Int64(keyRows), Int64(headDimension)))
    }

    /// `forward` for one query head with `bf16` products. Needs `supportsBF16(headDimension:)`
    /// and `scratch` of `bf16ScratchBytes` bytes.
    public static func forwardBF16(
        queries: UnsafePointer<Float>, queryStride: Int, queryRows: Int,
        keys: UnsafePointer<Float>, values: UnsafePointer<Float>, kvStride: Int, keyRows: Int,
        heads: Int, kvHeads: Int, headDimension: Int, head: Int,
        output: UnsafeMutablePointer<Float>, outputStride: Int, scratch: UnsafeMutableRawPointer
    ) {
        precondition(heads % kvHeads == 0, "query heads must be a multiple of K/V heads")
        precondition(supportsBF16(headDimension: headDimension), "BF16 attention is not available here")
        let g = head / (heads / kvHeads)
        l2pd_attention_bf16(
            queries + head * headDimension, Int64(queryStride), Int64(queryRows),
            keys + g * headDimension, values + g * headDimension, Int64(kvStride), Int64(keyRows),
            Int64(headDimension), 1 / Float(headDimension).squareRoot(),
            output + head * headDimension, Int64(outputStride), scratch)
    }
}
