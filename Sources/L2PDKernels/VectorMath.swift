import CElementwise

/// Element-wise kernels on contiguous `Float` buffers. The loops of the forward pass run in C
/// (`CElementwise`), built for AVX-512, AVX2+FMA and baseline and chosen at run time; `exp`
/// for single lanes stays here. They allocate nothing; callers own every buffer.
public enum VectorMath {
    public typealias Vector = SIMD8<Float>

    /// `exp(x)` for 8 lanes: Cephes' range reduction `x = n ln2 + r` (n rounded to nearest)
    /// and a degree-6 polynomial for `e^r` (relative error about 2e-7), then `2^n` built
    /// directly in the exponent bits.
    @inlinable @inline(__always)
    public static func exp(_ input: Vector) -> Vector {
        let low = Vector(repeating: -87.33654)
        let high = Vector(repeating: 88.72283)
        var x = input.replacing(with: low, where: input .< low)
        x = x.replacing(with: high, where: x .> high)
        // Adding 1.5 * 2^23 rounds x log2(e) to an integer held in the low mantissa bits.
        let shifted = x * 1.442_695_04 + 12_582_912
        let n = shifted - 12_582_912
        x = x - n * 0.693_359_375 - n * -2.121_944_4e-4
        var y = Vector(repeating: 1.987_569_15e-4)
        y = y * x + 1.398_199_95e-3
        y = y * x + 8.333_451_9e-3
        y = y * x + 4.166_579_59e-2
        y = y * x + 0.166_666_655
        y = y * x + 0.500_000_01
        y = y * (x * x) + x + 1
        let exponent = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127
        return y * unsafeBitCast(exponent &<< 23, to: Vector.self)
    }

    @inlinable @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Vector {
        UnsafeRawPointer(p).loadUnaligned(as: Vector.self)
    }

    @inlinable @inline(__always)
    static func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vector.self)
    }

    /// Largest element of `x[0..<count]` (`-infinity` when empty).
    public static func max(_ x: UnsafePointer<Float>, count: Int) -> Float {
        l2pd_max(x, Int64(count))
    }

    /// Sum of `x[0..<count]`.
    @inlinable
    public static func sum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var acc = Vector()
        var i = 0
        while i + 8 <= count {
            acc += load(x + i)
            i += 8
        }
        var total = acc.sum()
        while i < count {
            total += x[i]
            i += 1
        }
        return total
    }

    /// In place `x[i] = exp(x[i] - shift)`; returns the sum of the results.
    public static func expShifted(_ x: UnsafeMutablePointer<Float>, count: Int, shift: Float) -> Float {
        l2pd_exp_shifted(x, Int64(count), shift)
    }

    /// In place `x[i] *= factor`.
    public static func scale(_ x: UnsafeMutablePointer<Float>, count: Int, by factor: Float) {
        l2pd_scale(x, Int64(count), factor)
    }

    /// Numerically stable softmax of each of `rows` rows of length `columns` (row stride
    /// `stride`), in place.
    public static func softmaxRows(
        _ x: UnsafeMutablePointer<Float>, rows: Int, columns: Int, stride: Int
    ) {
        for r in 0..<rows {
            let row = x + r * stride
            let top = max(row, count: columns)
            let total = expShifted(row, count: columns, shift: top)
            scale(row, count: columns, by: 1 / total)
        }
    }

    /// `out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight` for each row (RMSNorm).
    /// `out` may alias `x`.
    public static func rmsNorm(
        _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, rows: Int, dimension: Int,
        epsilon: Float, out: UnsafeMutablePointer<Float>
    ) {
        for r in 0..<rows { l2pd_rms_norm(x + r * dimension, weight, out + r * dimension, Int64(dimension), epsilon) }
    }

    /// SwiGLU gate in place: `gate[i] = silu(gate[i]) * up[i]`, `silu(g) = g / (1 + e^-g)`.
    public static func siluGate(_ gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) {
        l2pd_silu_gate(gate, up, Int64(count))
    }

    /// The build of the element-wise kernels in use (`avx512`, `avx2` or `portable`), picked
    /// from the CPU on first use; `L2PD_KERNELS` names one.
    public static var kernels: String { String(cString: l2pd_elementwise_kernels()) }

    /// Scalar `exp` through the same polynomial as the SIMD path.
    @inlinable
    public static func _exp(_ x: Float) -> Float {
        exp(Vector(repeating: x))[0]
    }
}

extension VectorMath {
    /// Index of the largest element (the first one on ties, as `torch.argmax` does).
    public static func argmax(_ x: UnsafePointer<Float>, count: Int) -> Int {
        let top = max(x, count: count)
        for i in 0..<count where x[i] == top { return i }
        return 0
    }

    /// Calls `body(index, value)` for the `k` largest elements, largest first (ties keep the
    /// lower index first).
    public static func topK(_ x: UnsafePointer<Float>, count: Int, k: Int, _ body: (Int, Float) -> Void) {
        let k = Swift.min(k, count)
        guard k > 0 else { return }
        var indices = [Int](repeating: -1, count: k)
        var values = [Float](repeating: -.infinity, count: k)
        for i in 0..<count {
            let value = x[i]
            guard value > values[k - 1] || indices[k - 1] < 0 else { continue }
            var slot = k - 1
            while slot > 0 && (value > values[slot - 1] || indices[slot - 1] < 0) {
                values[slot] = values[slot - 1]
                indices[slot] = indices[slot - 1]
                slot -= 1
            }
            values[slot] = value
            indices[slot] = i
        }
        for j in 0..<k { body(indices[j], values[j]) }
    }
}
