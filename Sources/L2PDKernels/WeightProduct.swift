/// `x W^T` for a `WeightMatrix`, whatever dtype it is held in. The weight's rows (the
/// product's output columns) are split over the threads, so each thread reads a disjoint part
/// of the weights and every product sees all `m` input rows: the split keeps BLAS calls large
/// for long canvases and halves the weight traffic per thread for short cached steps. F32
/// rows go to sgemm in place; 16-bit rows are widened `tileRows` at a time into the thread's
/// reused scratch buffer just before their sgemm. Short inputs (cached steps) on large
/// weights compute each tile's `w a^T` and add its transpose into the output.
public final class WeightProduct {
    /// Threads the products are split over.
    public let threads: Int
    /// One conversion tile per thread.
    private let tiles: [FloatBuffer]
    /// One transposed-output tile per thread.
    private let outputs: [FloatBuffer]

    /// Weight rows widened per tile. Each tile is one sgemm call, which packs the whole input
    /// `a` again: one element copy per `tileRows` multiply-adds, whatever `m` is. Fewer rows
    /// keep the widened tile in the core's cache until sgemm reads it. 256 was the fastest on
    /// 1024- and 4096-wide LLaDA shapes at 32 to 1,100 positions (`l2pd bench forward`;
    /// 64K-float and 4M-float tiles were up to 1.5x slower at 32 positions).
    public static let preferredTileRows = 256

    /// Largest tile in floats (16 MiB), for very wide inner dimensions.
    public static let maximumTileFloats = 4 << 20

    /// Multiply-adds below which a product runs on the calling thread alone.
    public static let minimumSplitWork = 1 << 22

    public init(threads: Int) {
        self.threads = max(1, threads)
        tiles = (0..<max(1, threads)).map { _ in FloatBuffer(capacity: 1) }
        outputs = (0..<max(1, threads)).map { _ in FloatBuffer(capacity: 1) }
    }

    /// Rows of a tile for an inner dimension of `columns`: `preferredTileRows`, fewer when that
    /// would exceed `maximumTileFloats`; a multiple of 16, at least 16.
    public static func tileRows(columns: Int) -> Int {
        max(16, min(preferredTileRows, maximumTileFloats / max(columns, 1)) / 16 * 16)
    }

    /// Bytes of conversion scratch this product holds now.
    public var scratchBytes: Int { (tiles + outputs).reduce(0) { $0 + $1.capacity * 4 } }

    /// `c[m, w.rows] = a[m, w.columns] * w^T + beta * c` (row strides `lda`, `ldc`).
    public func multiply(
        _ a: UnsafePointer<Float>, lda: Int, m: Int, weight w: WeightMatrix, beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, w.rows > 0 else { return }
        if let packed = w.packed {
            multiplyPacked(a, lda: lda, m: m, packed: packed, beta: beta, c: c, ldc: ldc)
            return
        }
        // A small product costs less than waking a second thread.
        let parts = m * w.rows * w.columns < WeightProduct.minimumSplitWork ? 1 : threads
        // Split on 16-row boundaries so every thread's share keeps BLAS's column blocking.
        let unit = 16
        let blocks = (w.rows + unit - 1) / unit
        let shares = Parallel.chunks(blocks, parts: parts).map {
            ($0.lowerBound * unit)..<min(w.rows, $0.upperBound * unit)
        }
        Parallel.run(shares.count) { t in
            run(a, lda: lda, m: m, weight: w, rows: shares[t], beta: beta, c: c, ldc: ldc, tile: tiles[t], output: outputs[t])
        }
    }

    /// A packed (oneDNN) product: straight into `c` when strides are plain and nothing is added,
    /// otherwise through scratch. oneDNN splits it over `threads` threads itself.
    private func multiplyPacked(
        _ a: UnsafePointer<Float>, lda: Int, m: Int, packed: PackedMatmul, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let k = packed.columns
        let n = packed.rows
        var input = a
        if lda != k {
            tiles[0].reserve(m * k)
            for r in 0..<m { (tiles[0].pointer + r * k).update(from: a + r * lda, count: k) }
            input = UnsafePointer(tiles[0].pointer)
        }
        let direct = beta == 0 && ldc == n
        if !direct { outputs[0].reserve(m * n) }
        let out = direct ? c : outputs[0].pointer
        do {
            try packed.multiply(input, m: m, into: out, threads: threads)
        } catch {
            // oneDNN failing on a product it accepted when it was made is a broken installation.
            fatalError("\(error)")
        }
        guard !direct else { return }
        for r in 0..<m {
            let row = c + r * ldc
            let result = out + r * n
            if beta == 0 {
                row.update(from: result, count: n)
            } else {
                for j in 0..<n { row[j] = result[j] + beta * row[j] }
            }
        }
    }

    /// One thread's share: output columns `rows` (rows of `w`), `tileRows` weight rows per
    /// product. F32 rows are read in place, all of a part's share in one product unless the
    /// output is transposed (whose scratch stays one tile); 16-bit rows are widened into
    /// `tile` first.
    private func run(
        _ a: UnsafePointer<Float>, lda: Int, m: Int, weight w: WeightMatrix, rows share: Range<Int>, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int, tile: FloatBuffer, output: FloatBuffer
    ) {
        let k = w.columns
        let step = WeightProduct.tileRows(columns: k)
        let transposed = WeightProduct.transposesOutput(m: m, weightElements: w.rows * w.columns)
        var start = 0
        for part in w.parts {
            let lower = max(share.lowerBound, start)
            let upper = min(share.upperBound, start + part.rows)
            defer { start += part.rows }
            guard lower < upper else { continue }
            if part.dtype != .f32 { tile.reserve(min(step, upper - lower) * k) }
            let partStep = part.dtype == .f32 && !transposed ? upper - lower : step
            var row = lower
            while row < upper {
                let count = min(partStep, upper - row)
                let weights: UnsafePointer<Float>
                if part.dtype == .f32 {
                    weights = part.base.assumingMemoryBound(to: Float.self) + (row - start) * k
                } else {
                    w.convert(rows: row..<(row + count), into: tile.pointer)
                    weights = UnsafePointer(tile.pointer)
                }
                if transposed {
                    // c^T's rows for this tile: the weights are sgemm's left operand.
                    output.reserve(count * m)
                    BLAS.gemm(
                        transposeB: true, m: count, n: m, k: k, a: weights, lda: k, b: a, ldb: lda, c: output.pointer, ldc: m)
                    WeightProduct.addTransposed(output.pointer, rows: count, columns: m, beta: beta, into: c + row, ldc: ldc)
                } else {
                    BLAS.gemm(
                        transposeB: true, m: m, n: count, k: k, a: a, lda: lda, b: weights, ldb: k, beta: beta, c: c + row,
                        ldc: ldc)
                }
                row += count
            }
        }
    }

    /// Input rows below which products compute `w a^T` (the weights as sgemm's left operand)
    /// and transpose it into `c`. With few rows, sgemm packs the weights far faster as its left
    /// operand: 32-position passes ran 1.35x faster at d_model 1024 and 1.5x at 4096, 64
    /// positions about 1.1x, 128 and more the same or slower (`l2pd bench forward`).
    public static let transposedOutputRows = 128

    /// Weight elements below which products stay direct whatever `m` is: on the embedded
    /// model (d_model 128) the transpose cost more than the packing it saved (64-position
    /// passes 1.8 to 2.1 ms direct, 2.0 to 2.5 ms transposed).
    public static let transposedOutputMinimumWeights = 1 << 20

    /// Whether products of `m` input rows with a weight of `weightElements` go through the
    /// transposed output.
    static func transposesOutput(m: Int, weightElements: Int) -> Bool {
        m < transposedOutputRows && weightElements >= transposedOutputMinimumWeights
    }

    /// `c[j, i] = t[i, j] + beta * c[j, i]` for `t` of `rows x columns` (row stride `columns`)
    /// and `c` of `columns x rows` (row stride `ldc`), in 16 x 16 blocks.
    static func addTransposed(
        _ t: UnsafePointer<Float>, rows: Int, columns: Int, beta: Float, into c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let block = 16
        var i0 = 0
        while i0 < rows {
            let i1 = min(i0 + block, rows)
            var j0 = 0
            while j0 < columns {
                let j1 = min(j0 + block, columns)
                for j in j0..<j1 {
                    let out = c + j * ldc
                    if beta == 0 {
                        for i in i0..<i1 { out[i] = t[i * columns + j] }
                    } else {
                        for i in i0..<i1 { out[i] = t[i * columns + j] + beta * out[i] }
                    }
                }
                j0 = j1
            }
            i0 = i1
        }
    }
}
