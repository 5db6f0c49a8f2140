import Foundation
import Testing

@testable import L2PDKernels

/// BF16 rounding to nearest even, written out independently of the kernel.
private func bf16(_ x: Float) -> Double {
    let bits = x.bitPattern
    let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
    return Double(Float(bitPattern: rounded & 0xFFFF_0000))
}

/// Softmax attention of one head in Double; `round` is applied to scaled queries, keys,
/// values and to the softmax weights before the second product (unnormalized, as the kernel).
private func referenceHead(
    q: [Float], k: [Float], v: [Float], rows: Int, keyRows: Int, heads: Int, kvHeads: Int, hd: Int, h: Int,
    round: (Float) -> Double
) -> [Double] {
    let g = h / (heads / kvHeads)
    let scale = 1 / Float(hd).squareRoot()
    var out = [Double](repeating: 0, count: rows * hd)
    for r in 0..<rows {
        var s = (0..<keyRows).map { j in
            (0..<hd).reduce(0.0) { $0 + round(q[r * heads * hd + h * hd + $1] * scale) * round(k[j * kvHeads * hd + g * hd + $1]) }
        }
        let top = s.max()!
        s = s.map { Foundation.exp($0 - top) }
        let total = s.reduce(0, +)
        let w = s.map { round(Float($0)) }
        for i in 0..<hd {
            out[r * hd + i] = (0..<keyRows).reduce(0.0) { $0 + w[$1] * round(v[$1 * kvHeads * hd + g * hd + i]) } / total
        }
    }
    return out
}

@Suite(.enabled(if: Attention.supportsBF16(headDimension: 16), "this CPU has no AVX-512 BF16"))
struct AttentionBF16Tests {
    /// (query rows, key rows, head width): single rows, odd key counts (a padded key pair and
    /// key block), a tile boundary (4000 keys make tiles of 32 query rows), widths 16-128.
    @Test(arguments: [(1, 37, 32), (31, 301, 64), (37, 513, 16), (150, 150, 128), (5, 1, 64), (70, 4000, 16), (2, 5, 48)])
    func matchesTheDefinitionOnRoundedInputs(shape: (Int, Int, Int)) {
        let (rows, keyRows, hd) = shape
        let (heads, kvHeads) = (4, 2)
        let q = randomFloats(rows * heads * hd, seed: 21, scale: 3)
        let k = randomFloats(keyRows * kvHeads * hd, seed: 22, scale: 3)
        let v = randomFloats(keyRows * kvHeads * hd, seed: 23)
        var out = [Float](repeating: .nan, count: rows * heads * hd)
        let bytes = Attention.bf16ScratchBytes(queryRows: rows, keyRows: keyRows, headDimension: hd)
        #expect(bytes > 0)
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { scratch.deallocate() }
        for h in 0..<heads {
            out.withUnsafeMutableBufferPointer { o in
                Attention.forwardBF16(
                    queries: q, queryStride: heads * hd, queryRows: rows, keys: k, values: v, kvStride: kvHeads * hd,
                    keyRows: keyRows, heads: heads, kvHeads: kvHeads, headDimension: hd, head: h,
                    output: o.baseAddress!, outputStride: heads * hd, scratch: scratch)
            }
        }
        var worstRounded = 0.0
        var worstExact = 0.0
        for h in 0..<heads {
            let rounded = referenceHead(
                q: q, k: k, v: v, rows: rows, keyRows: keyRows, heads: heads, kvHeads: kvHeads, hd: hd, h: h, round: bf16)
            let exact = referenceHead(
                q: q, k: k, v: v, rows: rows, keyRows: keyRows, heads: heads, kvHeads: kvHeads, hd: hd, h: h,
                round: { Double($0) })
            for r in 0..<rows {
                for i in 0..<hd {
                    let got = Double(out[r * heads * hd + h * hd + i])
                    worstRounded = max(worstRounded, abs(got - rounded[r * hd + i]))
                    worstExact = max(worstExact, abs(got - exact[r * hd + i]))
                }
            }
        }
        // Values are in [-1, 1]. Against the same rounding: only F32 accumulation order and the
        // exp polynomial differ (which can flip a weight's rounding). Against exact math: BF16's 8 bits of mantissa.
        #expect(worstRounded < 1e-3, "largest error against rounded inputs \(worstRounded)")
        #expect(worstExact < 3e-2, "largest error against exact math \(worstExact)")
    }

    @Test func widthsItCannotTakeAreRefused() {
        #expect(!Attention.supportsBF16(headDimension: 6))
        #expect(!Attention.supportsBF16(headDimension: 0))
        #expect(Attention.bf16ScratchBytes(queryRows: 4, keyRows: 4, headDimension: 24) == 0)
    }
}
