import L2PDKernels
import L2PDStageIO

/// How fast a full forward pass runs compared with the machine's matrix-product speed.
public struct ForwardBenchmarkResult: Sendable, Codable {
    public var canvasLength: Int
    public var readPositions: Int
    public var threads: Int
    public var repetitions: Int
    /// Median seconds per forward pass.
    public var forwardSeconds: Double
    /// Matrix-product FLOPs of one pass divided by `forwardSeconds`.
    public var forwardGFLOPS: Double
    /// GFLOP/s of the same sequence of matrix products run alone (no norms, rotary, softmax).
    public var gemmSameShapesGFLOPS: Double
    /// GFLOP/s of a large square product (2048^3, after a warm-up): the machine's matrix-product speed.
    public var gemmPeakGFLOPS: Double
    /// `forwardGFLOPS / gemmPeakGFLOPS`.
    public var ratio: Double
    /// `forwardGFLOPS / gemmSameShapesGFLOPS`: share of the pass that is matrix products.
    public var ratioToSameShapes: Double
    /// How the timed stage held its weights (`native` or `f32`).
    public var weights: String
    /// Bytes of weights the stage held.
    public var weightBytes: Int
    /// With native weights: median seconds per pass of the same model with F32 weights,
    /// timed in the same run, and `f32ForwardSeconds / forwardSeconds` (above 1: native is faster).
    public var f32ForwardSeconds: Double?
    public var nativeToF32: Double?
    /// Bytes of K/V cache one request of `canvasLength` positions keeps (F32, every layer).
    public var cacheBytesPerRequest: Int
    /// The kernel set OpenBLAS runs (`Haswell`, `SkylakeX`, ...).
    public var blasKernels: String
    /// The CPU flags of `BLAS.reportedFlags` this machine has.
    public var cpuFeatures: [String]
    /// With int8 weights: GOP/s of an int8 2048^3 product on the same kernels (the peak of
    /// that precision), `forwardGFLOPS` over it, and the oneDNN kernels that ran.
    public var int8PeakGOPS: Double? = nil
    public var ratioToInt8Peak: Double? = nil
    public var productKernels: String? = nil
    /// The build of the element-wise kernels (`avx512`, `avx2`, `portable`).
    public var elementwiseKernels: String = VectorMath.kernels
    /// With int8 weights: the read positions' logits against a stage with the checkpoint's own
    /// weights in F32 math (native, widened) and F32 attention on the same tokens: mean and smallest cosine similarity per position, and the
    /// share of positions whose argmax is the same.
    public var logitsCosineToF32: Double? = nil
    public var logitsCosineToF32Min: Double? = nil
    public var argmaxAgreementToF32: Double? = nil
    /// Precision of attention's products in the timed stage (`f32` or `bf16`).
    public var attentionProducts: String = Attention.Precision.f32.rawValue
}

/// Times full forward passes of a whole model (one stage) against plain matrix products.
public enum ForwardBenchmark {
    /// One matrix product of a pass: `count` calls of `m x k` times `k x n`.
    struct Shape {
        var m: Int, n: Int, k: Int, count: Int
        var flops: Double { 2 * Double(m) * Double(n) * Double(k) * Double(count) }
    }

    static func shapes(_ c: ModelConfig, length: Int, reads: Int) -> [Shape] {
        let n = length
        let perLayer = [
            Shape(m: n, n: c.dModel, k: c.dModel, count: 2),  // q_proj, attn_out
            Shape(m: n, n: c.kvDimension, k: c.dModel, count: 2),  // k_proj, v_proj
            Shape(m: n, n: c.mlpHiddenSize, k: c.dModel, count: 2),  // ff_proj, up_proj
            Shape(m: n, n: c.dModel, k: c.mlpHiddenSize, count: 1),  // ff_out
            Shape(m: n, n: n, k: c.headDimension, count: c.heads),  // q k^T
            Shape(m: n, n: c.headDimension, k: n, count: c.heads),  // softmax(.) v
        ]
        return perLayer.map { Shape(m: $0.m, n: $0.n, k: $0.k, count: $0.count * c.layers) }
            + [Shape(m: reads, n: c.embeddingSize, k: c.dModel, count: 1)]
    }

    /// Measures the machine's matrix-product speed on `threads` threads (single-threaded BLAS
    /// calls, rows split over the threads: the scheme the stages use), then full forward passes
    /// of a one-stage model with `threads` stage threads. `onStep(done, total)` follows the work:
    /// the peak product, the pass's products, then each timed forward pass.
    public static func run(
        checkpoint: Checkpoint, length: Int, reads: Int, repetitions: Int, threads: Int, weights: WeightFormat = .native,
        onStep: (Int, Int) -> Void = { _, _ in }
    ) throws -> ForwardBenchmarkResult {
        let steps = 2 + (weights == .native ? 2 : 1) * repetitions
        let config = checkpoint.config
        let passShapes = shapes(config, length: length, reads: reads)
        let flops = passShapes.reduce(0) { $0 + $1.flops }
        BLAS.setThreads(1)
        let peak = peakGFLOPS(threads: threads)
        onStep(1, steps)
        let sameShapesGFLOPS = flops / timeProducts(passShapes, repetitions: repetitions, threads: threads) / 1e9
        onStep(2, steps)

        var done = 2
        /// Median seconds of `repetitions` passes of a stage holding its weights as `format`.
        func timePasses(_ format: WeightFormat) throws -> (seconds: Double, stage: Stage) {
            let weights = try StageWeights(checkpoint: checkpoint, layers: 0..<config.layers, format: format)
            weights.prefault()
            let stage = Stage(weights: weights, threads: threads)
            let tokens = (0..<length).map { ($0 * 7919) % config.vocabularySize }
            let request = SequenceForward(
                sequenceID: 1, length: length, cache: .none, readPositions: Array((length - reads)..<length))
            _ = try stage.forward([request], input: .tokens(tokens))  // warm-up: grows scratch buffers
            var times: [Double] = []
            for _ in 0..<repetitions {
                let start = ContinuousClock.now
                _ = try stage.forward([request], input: .tokens(tokens))
                times.append(seconds(ContinuousClock.now - start))
                done += 1
                onStep(done, steps)
            }
            return (times.sorted()[times.count / 2], stage)
        }
        let (forwardSeconds, stage) = try timePasses(weights)
        let f32Seconds = weights == .native ? try timePasses(.f32).seconds : nil
        let forwardGFLOPS = flops / forwardSeconds / 1e9
        let int8 = weights == .int8 ? try int8Peak(threads: threads) : nil
        var result = ForwardBenchmarkResult(
            canvasLength: length, readPositions: reads, threads: threads, repetitions: repetitions,
            forwardSeconds: forwardSeconds, forwardGFLOPS: forwardGFLOPS,
            gemmSameShapesGFLOPS: sameShapesGFLOPS, gemmPeakGFLOPS: peak,
            ratio: forwardGFLOPS / peak, ratioToSameShapes: forwardGFLOPS / sameShapesGFLOPS,
            weights: weights.rawValue, weightBytes: stage.weights.byteCount,
            f32ForwardSeconds: f32Seconds, nativeToF32: f32Seconds.map { $0 / forwardSeconds },
            cacheBytesPerRequest: stage.cacheBytes(length: length), blasKernels: BLAS.coreName,
            cpuFeatures: BLAS.reportedFlags.filter(BLAS.cpuFlags().contains))
        result.attentionProducts = stage.attentionPrecision.rawValue
        if let int8 {
            result.int8PeakGOPS = int8.gops
            result.ratioToInt8Peak = forwardGFLOPS / int8.gops
            result.productKernels = int8.kernels
            let tokens = (0..<length).map { ($0 * 7919) % config.vocabularySize }
            let request = SequenceForward(
                sequenceID: 2, length: length, cache: .none, readPositions: Array((length - reads)..<length))
            let quantized = try stage.forwardLogits([request], input: .tokens(tokens))
            // Native weights are the checkpoint's own values, widened to F32 tile by tile: the
            // same math as F32 weights without holding them (an 8B model's F32 copy is 30 GiB).
            let reference = Stage(
                weights: try StageWeights(checkpoint: checkpoint, layers: 0..<config.layers, format: .native),
                threads: threads, attention: .f32)
            let exact = try reference.forwardLogits([request], input: .tokens(tokens))
            let agreement = LogitsAgreement(quantized, exact, columns: config.embeddingSize)
            result.logitsCosineToF32 = agreement.meanCosine
            result.logitsCosineToF32Min = agreement.smallestCosine
            result.argmaxAgreementToF32 = agreement.sameArgmax
        }
        return result
    }

    /// GOP/s of a 2048 x 2048 x 2048 int8 product (input quantization included), best of 3.
    static func int8Peak(threads: Int) throws -> (gops: Double, kernels: String) {
        let n = 2048
        let w = FloatBuffer(capacity: n * n)
        for i in 0..<(n * n) { w.pointer[i] = Float(i % 13) * 0.01 - 0.06 }
        let product = try PackedMatmul(weights: w.pointer, rows: n, columns: n, precision: .int8)
        let out = FloatBuffer(capacity: n * n)
        try product.multiply(w.pointer, m: n, into: out.pointer, threads: threads)
        var best = Double.infinity
        for _ in 0..<3 {
            let start = ContinuousClock.now
            try product.multiply(w.pointer, m: n, into: out.pointer, threads: threads)
            best = min(best, seconds(ContinuousClock.now - start))
        }
        return (2 * Double(n) * Double(n) * Double(n) / best / 1e9, product.implementation)
    }

    /// Median seconds to run every product of `shapes` once, each product's rows split over
    /// `threads` threads.
    static func timeProducts(_ shapes: [Shape], repetitions: Int, threads: Int) -> Double {
        let largest = shapes.reduce(0) { max($0, $1.m * $1.k, $1.k * $1.n, $1.m * $1.n) }
        let a = FloatBuffer(capacity: largest)
        let b = FloatBuffer(capacity: largest)
        let c = FloatBuffer(capacity: largest)
        for i in 0..<largest {
            a.pointer[i] = Float(i % 13) * 0.01
            b.pointer[i] = Float(i % 7) * 0.01
        }
        func pass() {
            for s in shapes {
                let parts = Parallel.chunks(s.m, parts: threads)
                for _ in 0..<s.count {
                    Parallel.run(parts.count) { p in
                        let rows = parts[p]
                        BLAS.gemm(
                            transposeB: true, m: rows.count, n: s.n, k: s.k, a: a.pointer + rows.lowerBound * s.k, lda: s.k,
                            b: b.pointer, ldb: s.k, c: c.pointer + rows.lowerBound * s.n, ldc: s.n)
                    }
                }
            }
        }
        pass()
        var times: [Double] = []
        for _ in 0..<repetitions {
            let start = ContinuousClock.now
            pass()
            times.append(seconds(ContinuousClock.now - start))
        }
        return times.sorted()[times.count / 2]
    }

    /// GFLOP/s of a 1024 x 1024 x 1024 product on `threads` threads, median of five.
    public static func peakGFLOPS(threads: Int) -> Double {
        let n = 2048
        let shape = [Shape(m: n, n: n, k: n, count: 1)]
        _ = timeProducts(shape, repetitions: 1, threads: threads)  // warm-up: clocks, caches, pages
        let time = timeProducts(shape, repetitions: 5, threads: threads)
        return 2 * Double(n * n * n) / time / 1e9
    }

    static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
    }
}

/// How close two sets of logits rows are: cosine similarity per row and argmax agreement.
struct LogitsAgreement {
    var meanCosine = 0.0
    var smallestCosine = 1.0
    var sameArgmax = 0.0

    init(_ a: [Float], _ b: [Float], columns: Int) {
        precondition(a.count == b.count && columns > 0 && a.count % columns == 0)
        let rows = a.count / columns
        guard rows > 0 else { return }
        var same = 0
        for r in 0..<rows {
            var (dot, aa, bb) = (0.0, 0.0, 0.0)
            var (bestA, bestB) = (r * columns, r * columns)
            for i in (r * columns)..<((r + 1) * columns) {
                dot += Double(a[i]) * Double(b[i])
                aa += Double(a[i]) * Double(a[i])
                bb += Double(b[i]) * Double(b[i])
                if a[i] > a[bestA] { bestA = i }
                if b[i] > b[bestB] { bestB = i }
            }
            let cosine = aa > 0 && bb > 0 ? dot / (aa.squareRoot() * bb.squareRoot()) : (aa == bb ? 1 : 0)
            meanCosine += cosine / Double(rows)
            smallestCosine = min(smallestCosine, cosine)
            if bestA == bestB { same += 1 }
        }
        sameArgmax = Double(same) / Double(rows)
    }
}
