import CElementwise
import Foundation
import Testing

@testable import L2PDKernels

/// Deterministic pseudo-random floats for kernel inputs.
func randomFloats(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
}

@Test func vectorExpIsAccurateAcrossTheRange() {
    var worst: Double = 0
    for i in 0..<20_000 {
        let x = Float(-87 + Double(i) * 175 / 20_000)
        let approx = Double(VectorMath._exp(x))
        let exact = Foundation.exp(Double(x))
        worst = max(worst, abs(approx - exact) / exact)
    }
    #expect(worst < 1e-6)
}

@Test(arguments: [(1, 5), (3, 8), (4, 37)])
func softmaxRowsSumToOneAndMatchDoubles(rows: Int, columns: Int) {
    var x = randomFloats(rows * columns, seed: 7, scale: 20)
    let original = x
    x.withUnsafeMutableBufferPointer {
        VectorMath.softmaxRows($0.baseAddress!, rows: rows, columns: columns, stride: columns)
    }
    for r in 0..<rows {
        let row = original[(r * columns)..<((r + 1) * columns)].map(Double.init)
        let top = row.max()!
        let total = row.reduce(0) { $0 + Foundation.exp($1 - top) }
        for j in 0..<columns {
            let expected = Foundation.exp(row[row.startIndex + j] - top) / total
            #expect(abs(Double(x[r * columns + j]) - expected) < 1e-6)
        }
    }
}

@Test func rmsNormMatchesDefinition() {
    let rows = 3
    let dim = 19
    let x = randomFloats(rows * dim, seed: 1, scale: 3)
    let w = randomFloats(dim, seed: 2)
    var out = [Float](repeating: 0, count: rows * dim)
    x.withUnsafeBufferPointer { xp in
        w.withUnsafeBufferPointer { wp in
            out.withUnsafeMutableBufferPointer {
                VectorMath.rmsNorm(
                    xp.baseAddress!, weight: wp.baseAddress!, rows: rows, dimension: dim, epsilon: 1e-5, out: $0.baseAddress!)
            }
        }
    }
    for r in 0..<rows {
        let row = (0..<dim).map { Double(x[r * dim + $0]) }
        let inverse = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(dim) + 1e-5).squareRoot()
        for j in 0..<dim {
            #expect(abs(Double(out[r * dim + j]) - row[j] * inverse * Double(w[j])) < 1e-5)
        }
    }
}

@Test func siluGateMatchesDefinition() {
    var gate = randomFloats(21, seed: 3, scale: 8)
    let original = gate
    let up = randomFloats(21, seed: 4)
    gate.withUnsafeMutableBufferPointer { g in
        up.withUnsafeBufferPointer { VectorMath.siluGate(g.baseAddress!, up: $0.baseAddress!, count: 21) }
    }
    for i in 0..<21 {
        let g = Double(original[i])
        #expect(abs(Double(gate[i]) - g / (1 + Foundation.exp(-g)) * Double(up[i])) < 1e-5)
    }
}

@Test func gemmComputesLinearLayerProduct() {
    let (m, n, k) = (5, 7, 9)
    let a = randomFloats(m * k, seed: 5)
    let w = randomFloats(n * k, seed: 6)  // [out, in]
    var c = [Float](repeating: 1, count: m * n)
    a.withUnsafeBufferPointer { ap in
        w.withUnsafeBufferPointer { wp in
            c.withUnsafeMutableBufferPointer {
                BLAS.gemm(
                    transposeB: true, m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: wp.baseAddress!, ldb: k, beta: 1, c: $0.baseAddress!,
                    ldc: n)
            }
        }
    }
    for i in 0..<m {
        for j in 0..<n {
            let dot = (0..<k).reduce(0.0) { $0 + Double(a[i * k + $1]) * Double(w[j * k + $1]) }
            #expect(abs(Double(c[i * n + j]) - (dot + 1)) < 1e-5)
        }
    }
}

@Test func rotaryRotatesHalvesByPositionAngle() {
    let headDim = 8
    let table = RotaryTable(headDimension: headDim, theta: 10_000, positions: 64)
    let heads = 2
    var x = randomFloats(3 * heads * headDim, seed: 9)
    let original = x
    let positions = [0, 5, 63]
    x.withUnsafeMutableBufferPointer { xp in
        positions.withUnsafeBufferPointer {
            table.apply(xp.baseAddress!, rows: 3, rowStride: heads * headDim, heads: heads, positions: $0.baseAddress!)
        }
    }
    for r in 0..<3 {
        for h in 0..<heads {
            let base = r * heads * headDim + h * headDim
            for i in 0..<(headDim / 2) {
                let angle = Double(positions[r]) * Foundation.pow(10_000, -Double(2 * i) / Double(headDim))
                let a = Double(original[base + i])
                let b = Double(original[base + i + headDim / 2])
                #expect(abs(Double(x[base + i]) - (a * Foundation.cos(angle) - b * Foundation.sin(angle))) < 1e-5)
                #expect(abs(Double(x[base + i + headDim / 2]) - (b * Foundation.cos(angle) + a * Foundation.sin(angle))) < 1e-5)
            }
        }
    }
}

@Test func groupedAttentionMatchesNaiveSoftmaxAttention() {
    let (heads, kvHeads, hd) = (4, 2, 6)
    let (queryRows, keyRows) = (3, 10)
    let q = randomFloats(queryRows * heads * hd, seed: 11, scale: 2)
    let k = randomFloats(keyRows * kvHeads * hd, seed: 12, scale: 2)
    let v = randomFloats(keyRows * kvHeads * hd, seed: 13)
    var out = [Float](repeating: 0, count: queryRows * heads * hd)
    var scores = [Float](repeating: 0, count: queryRows * keyRows)
    q.withUnsafeBufferPointer { qp in
        k.withUnsafeBufferPointer { kp in
            v.withUnsafeBufferPointer { vp in
                out.withUnsafeMutableBufferPointer { op in
                    scores.withUnsafeMutableBufferPointer { sp in
                        Attention.forward(
                            queries: qp.baseAddress!, queryStride: heads * hd, queryRows: queryRows,
                            keys: kp.baseAddress!, values: vp.baseAddress!, kvStride: kvHeads * hd, keyRows: keyRows,
                            heads: heads, kvHeads: kvHeads, headDimension: hd,
                            output: op.baseAddress!, outputStride: heads * hd, scores: sp.baseAddress!)
                    }
                }
            }
        }
    }
    for r in 0..<queryRows {
        for h in 0..<heads {
            let g = h / (heads / kvHeads)
            var weights = (0..<keyRows).map { j in
                (0..<hd).reduce(0.0) { $0 + Double(q[r * heads * hd + h * hd + $1]) * Double(k[j * kvHeads * hd + g * hd + $1]) }
                    / Double(hd).squareRoot()
            }
            let top = weights.max()!
            weights = weights.map { Foundation.exp($0 - top) }
            let total = weights.reduce(0, +)
            for i in 0..<hd {
                let expected = (0..<keyRows).reduce(0.0) { $0 + weights[$1] / total * Double(v[$1 * kvHeads * hd + g * hd + i]) }
                #expect(abs(Double(out[r * heads * hd + h * hd + i]) - expected) < 1e-5)
            }
        }
    }
}

@Test func topKReturnsLargestFirstWithStableTies() {
    let x: [Float] = [0.1, 0.9, 0.3, 0.9, -1, 0.5]
    var picked: [Int] = []
    x.withUnsafeBufferPointer { VectorMath.topK($0.baseAddress!, count: x.count, k: 3) { i, _ in picked.append(i) } }
    #expect(picked == [1, 3, 5])
    #expect(x.withUnsafeBufferPointer { VectorMath.argmax($0.baseAddress!, count: x.count) } == 1)
}

/// BF16 is the top 16 bits of an IEEE float: the widening must give these exact values,
/// in the 16-lane body and the scalar tail alike (19 elements).
@Test func bf16WidensExactly() {
    let bits: [UInt16] = [
        0x3F80, 0xC000, 0x0000, 0x8000, 0x7F80, 0xFF80, 0x3E80, 0x4049, 0x0001, 0x7F7F, 0x3F80, 0x3F81, 0x4000,
        0xBF80, 0x3C00, 0x4780, 0xC2F7, 0x3F00, 0x4120,
    ]
    let expected: [Float] = [
        1, -2, 0, -0.0, .infinity, -.infinity, 0.25, 3.140625, Float(bitPattern: 0x0001_0000),
        Float(bitPattern: 0x7F7F_0000), 1, 1.0078125, 2, -1, 0.0078125, 65536, -123.5, 0.5, 10,
    ]
    var out = [Float](repeating: .nan, count: bits.count)
    bits.withUnsafeBufferPointer { source in
        out.withUnsafeMutableBufferPointer { DTypeConversion.bf16ToFloat(source.baseAddress!, $0.baseAddress!, count: bits.count) }
    }
    #expect(out.map(\.bitPattern) == expected.map(\.bitPattern))
    // Rounding back is to nearest, ties to even.
    #expect(DTypeConversion.floatToBF16(1.00390625) == 0x3F80)  // halfway, even stays
    #expect(DTypeConversion.floatToBF16(1.01171875) == 0x3F82)  // halfway, odd rounds up
    #expect(DTypeConversion.floatToBF16(-2) == 0xC000)
}

/// A weight stacked from a BF16 part and an F32 part, multiplied with the rows split over
/// threads and widened in tiles, equals one sgemm on the same values widened up front, both
/// for short inputs (the weights as sgemm's left operand, output transposed back) and long
/// ones, with an input row stride wider than the rows.
@Test(arguments: [1, 2, 3], [37, WeightProduct.transposedOutputRows + 22])
func weightProductMatchesPlainGemm(threads: Int, m: Int) {
    let k = 4096  // a weight large enough for the transposed path, products large enough to split
    let lda = k + 3
    let (rowsA, rowsB) = (WeightProduct.tileRows(columns: k) + 21, 19)  // more than one tile in the BF16 part
    let n = rowsA + rowsB
    let halves = WeightStorage(byteCount: rowsA * k * 2)
    let h = halves.bytes.bindMemory(to: UInt16.self, capacity: rowsA * k)
    for i in 0..<(rowsA * k) { h[i] = DTypeConversion.floatToBF16(Float((i * 37) % 101 - 50) / 64) }
    let floats = WeightStorage(byteCount: rowsB * k * 4)
    let f = floats.bytes.bindMemory(to: Float.self, capacity: rowsB * k)
    for i in 0..<(rowsB * k) { f[i] = Float((i * 13) % 29 - 14) / 32 }
    let weight = WeightMatrix(
        parts: [.init(base: halves.bytes, rows: rowsA, dtype: .bf16), .init(base: floats.bytes, rows: rowsB, dtype: .f32)], columns: k,
        owners: [halves, floats])
    #expect(weight.rows == n && weight.byteCount == rowsA * k * 2 + rowsB * k * 4 && weight.dtype == nil)
    #expect(WeightProduct.transposesOutput(m: m, weightElements: n * k) == (m < WeightProduct.transposedOutputRows))

    let a = FloatBuffer((0..<(m * lda)).map { Float(($0 * 7) % 23 - 11) / 64 })
    let wide = FloatBuffer(capacity: n * k)
    weight.convert(rows: 0..<n, into: wide.pointer)
    let expected = FloatBuffer(capacity: m * n)
    BLAS.gemm(transposeB: true, m: m, n: n, k: k, a: a.pointer, lda: lda, b: wide.pointer, ldb: k, c: expected.pointer, ldc: n)

    // beta = 1 adds onto what is there, as the residual products do; beta = 0 overwrites.
    let product = WeightProduct(threads: threads)
    for beta: Float in [1, 0] {
        let out = FloatBuffer((0..<(m * n)).map { Float($0 % 5) })
        product.multiply(a.pointer, lda: lda, m: m, weight: weight, beta: beta, c: out.pointer, ldc: n)
        var worst: Float = 0
        for i in 0..<(m * n) { worst = max(worst, abs(out.pointer[i] - beta * Float(i % 5) - expected.pointer[i])) }
        // Sums of 4096 terms, added in another order: rounding differs, a wrong row or column would not.
        #expect(worst < 1e-3, "m \(m), beta \(beta)")
    }
}

/// Every build of the element-wise kernels this CPU runs (AVX-512, AVX2, portable), called
/// side by side at awkward lengths (1, a lane short, a lane over, long), against Double.
@Test(arguments: ["portable", "avx2", "avx512"])
func everyElementwiseBuildMatchesDoubles(build: String) throws {
    guard let kernels = l2pd_elementwise_named(build)?.pointee else { return }  // not on this CPU
    for n in [1, 7, 8, 9, 15, 16, 17, 31, 33, 1000] {
        let original = randomFloats(n, seed: UInt64(n), scale: 20)
        var x = original
        let top = x.withUnsafeBufferPointer { kernels.max($0.baseAddress!, Int64(n)) }
        #expect(top == original.max()!, "\(build) max n=\(n)")
        let total = x.withUnsafeMutableBufferPointer { kernels.exp_shifted($0.baseAddress!, Int64(n), top) }
        let exact = original.map { Foundation.exp(Double($0 - top)) }
        for i in 0..<n { #expect(abs(Double(x[i]) - exact[i]) <= 2e-7 * max(exact[i], 1e-30) + 1e-38, "\(build) exp n=\(n)") }
        #expect(abs(Double(total) - exact.reduce(0, +)) <= 1e-5 * exact.reduce(0, +))
        x.withUnsafeMutableBufferPointer { kernels.scale($0.baseAddress!, Int64(n), 0.5) }
        for i in 0..<n { #expect(abs(Double(x[i]) - exact[i] * 0.5) <= 2e-7 * exact[i] + 1e-38) }
        let w = randomFloats(n, seed: 99)
        var out = [Float](repeating: 0, count: n)
        original.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                out.withUnsafeMutableBufferPointer { kernels.rms_norm(xp.baseAddress!, wp.baseAddress!, $0.baseAddress!, Int64(n), 1e-5) }
            }
        }
        let inverse = 1 / (original.reduce(0) { $0 + Double($1) * Double($1) } / Double(n) + 1e-5).squareRoot()
        for i in 0..<n { #expect(abs(Double(out[i]) - Double(original[i]) * inverse * Double(w[i])) < 1e-5, "\(build) rms n=\(n)") }
        var gate = original
        gate.withUnsafeMutableBufferPointer { g in
            w.withUnsafeBufferPointer { kernels.silu_gate(g.baseAddress!, $0.baseAddress!, Int64(n)) }
        }
        for i in 0..<n {
            let g = Double(original[i])
            #expect(abs(Double(gate[i]) - g / (1 + Foundation.exp(-g)) * Double(w[i])) < 1e-5, "\(build) silu n=\(n)")
        }
    }
}

/// Every build's rotary rotation at awkward half widths (a lane short, a lane over) against
/// Double, several heads per row.
@Test(arguments: ["portable", "avx2", "avx512"])
func everyRotaryBuildMatchesDoubles(build: String) throws {
    guard let kernels = l2pd_elementwise_named(build)?.pointee else { return }  // not on this CPU
    for half in [1, 3, 7, 8, 9, 16, 17, 64] {
        let heads = 3
        let original = randomFloats(heads * 2 * half, seed: UInt64(half), scale: 4)
        let angles = randomFloats(half, seed: UInt64(100 + half), scale: 3)
        let c = angles.map { Foundation.cos($0) }
        let s = angles.map { Foundation.sin($0) }
        var x = original
        x.withUnsafeMutableBufferPointer { kernels.rotary($0.baseAddress!, Int64(heads), Int64(half), c, s) }
        for h in 0..<heads {
            for i in 0..<half {
                let a = Double(original[h * 2 * half + i])
                let b = Double(original[h * 2 * half + half + i])
                let (ci, si) = (Double(c[i]), Double(s[i]))
                #expect(abs(Double(x[h * 2 * half + i]) - (a * ci - b * si)) < 1e-5, "\(build) half \(half)")
                #expect(abs(Double(x[h * 2 * half + half + i]) - (b * ci + a * si)) < 1e-5, "\(build) half \(half)")
            }
        }
    }
}
