import Foundation
import Testing

@testable import L2PDKernels

/// Plain products in Double: the reference the packed products are held to.
func referenceProduct(_ x: [Float], _ w: [Float], m: Int, n: Int, k: Int) -> [Double] {
    var y = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var acc = 0.0
            for l in 0..<k { acc += Double(x[i * k + l]) * Double(w[j * k + l]) }
            y[i * n + j] = acc
        }
    }
    return y
}

func seededValues(_ count: Int, seed: UInt64) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(Double(state >> 40) / Double(1 << 24)) - 0.5
    }
}

struct PackedMatmulTests {
    /// Awkward shapes (one row, rows not a multiple of anything, k not a multiple of 64, one
    /// output column; 301 rows quantized and scaled on two threads): f32 matches the Double reference to float rounding, int8 to its
    /// quantization (cosine above 0.9999, each element within the bound its scales allow).
    @Test(arguments: [(1, 100, 37), (31, 130, 65), (37, 64, 1), (150, 1000, 333), (37, 200, 64), (301, 700, 401)])
    func packedProductsMatchAPlainReference(m: Int, k: Int, n: Int) throws {
        let x = seededValues(m * k, seed: UInt64(m * 1000 + k))
        let w = seededValues(n * k, seed: UInt64(n * 7 + 3))
        let reference = referenceProduct(x, w, m: m, n: n, k: k)
        for precision in PackedMatmul.Precision.allCases {
            let product = try w.withUnsafeBufferPointer {
                try PackedMatmul(weights: $0.baseAddress!, rows: n, columns: k, precision: precision)
            }
            var y = [Float](repeating: .nan, count: m * n)
            // Twice: the second run reuses the kernel made for this m.
            for _ in 0..<2 {
                try x.withUnsafeBufferPointer { xp in
                    try y.withUnsafeMutableBufferPointer { try product.multiply(xp.baseAddress!, m: m, into: $0.baseAddress!, threads: 2) }
                }
            }
            var dot = 0.0
            var yy = 0.0
            var rr = 0.0
            for i in 0..<(m * n) {
                let got = Double(y[i])
                dot += got * reference[i]
                yy += got * got
                rr += reference[i] * reference[i]
                switch precision {
                case .f32: #expect(abs(got - reference[i]) <= 1e-5 * Double(k), "\(precision) \(i): \(got) vs \(reference[i])")
                // |x|, |w| <= 0.5: each of the k terms is off by at most half a step of x's
                // scale (0.5/127) times 0.5 plus half a step of w's (0.5/levels) times 0.5.
                case .int8:
                    let bound = Double(k) * 0.25 * (1 / 127 + 1 / Double(PackedMatmul.weightLevels)) + 1e-4
                    #expect(abs(got - reference[i]) <= bound, "\(precision) \(i)")
                }
            }
            #expect(dot / (yy.squareRoot() * rr.squareRoot()) > (precision == .f32 ? 0.999_999 : 0.999))
            #expect(product.weightBytes >= n * k * (precision == .f32 ? 4 : 1))
            #expect(!product.implementation.isEmpty)
        }
    }

    /// Quantization by its definition: the scale is the row's largest magnitude over 127, and
    /// each weight comes back within half a step.
    @Test func quantizationRoundsEachRowToItsOwnScale() {
        let rows = 3
        let columns = 70
        var w = seededValues(rows * columns, seed: 9)
        for c in 0..<columns { w[columns + c] = 0 }  // an all-zero row
        w[2 * columns + 5] = -3
        var q = [Int8](repeating: 0, count: rows * columns)
        var scales = [Float](repeating: 0, count: rows)
        w.withUnsafeBufferPointer { PackedMatmul.quantize($0.baseAddress!, rows: rows, columns: columns, into: &q, scales: &scales) }
        #expect(scales[1] == 1 && q[columns..<(2 * columns)].allSatisfy { $0 == 0 })
        #expect(scales[2] == 3 / 127 && q[2 * columns + 5] == -127)
        for r in 0..<rows {
            let top = w[(r * columns)..<((r + 1) * columns)].map(abs).max()!
            if top > 0 { #expect(abs(scales[r] - top / 127) <= 1e-7) }
            for c in 0..<columns {
                #expect(abs(Float(q[r * columns + c]) * scales[r] - w[r * columns + c]) <= scales[r] / 2 + 1e-7)
            }
        }
    }
}
