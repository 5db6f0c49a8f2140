import Foundation
import L2PDKernels
import L2PDStageIO

/// One sequence's kept K/V: for each layer of the stage, `[capacity, kvDimension]` rows.
final class SequenceCache {
    let capacity: Int
    let keys: [FloatBuffer]
    let values: [FloatBuffer]
    /// Positions `0..<storedLength` hold valid K/V.
    var storedLength = 0
    /// When a pass last used it (the stage's pass counter), for least-recently-used eviction.
    var lastUse: UInt64 = 0

    init(layers: Int, capacity: Int, kvDimension: Int) {
        self.capacity = capacity
        keys = (0..<layers).map { _ in FloatBuffer(capacity: capacity * kvDimension) }
        values = (0..<layers).map { _ in FloatBuffer(capacity: capacity * kvDimension) }
    }
}

/// A pipeline stage: runs a contiguous range of LLaDA blocks over a batch of sequences, keeps
/// per-sequence K/V caches for its layers, and on the last stage turns hidden states into
/// readouts. Not thread-safe: one owner calls it at a time (an in-process pipeline or a
/// worker's compute thread). Scratch buffers grow to the largest batch seen and are reused.
public final class Stage {
    public let weights: StageWeights
    public var config: ModelConfig { weights.config }
    private let rotary: RotaryTable
    private var caches: [UInt64: SequenceCache] = [:]
    /// Bounds on kept K/V caches; the least recently used one beyond them is dropped.
    public var cacheLimits = CacheLimits()
    private var passes: UInt64 = 0
    /// Recently evicted sequence ids (bounded), so a request that comes back hears why.
    private var evicted: [UInt64] = []

    // Scratch, reused every pass.
    private let x = FloatBuffer(capacity: 1)
    private let normed = FloatBuffer(capacity: 1)
    /// `[rows, dModel + 2 kvDimension]`: q, k, v side by side.
    private let qkv = FloatBuffer(capacity: 1)
    private let attention = FloatBuffer(capacity: 1)
    /// `[rows, 2 mlpHiddenSize]`: gate then up; the gate half becomes `silu(gate) * up`.
    private let gateUp = FloatBuffer(capacity: 1)
    private let logits = FloatBuffer(capacity: 1)
    /// One attention score buffer per worker thread.
    private let scores: [FloatBuffer]
    private var positions: [Int] = []
    /// Threads this stage splits rows, heads and weight products over.
    public let threads: Int
    /// Matrix products against the weights, split over `threads` by output column.
    private let products: WeightProduct
    /// Precision of attention's products: BF16 with int8 weights where the CPU has AVX-512
    /// BF16 (the fast, approximate path), F32 otherwise. `L2PD_ATTENTION=f32|bf16` overrides
    /// it (`bf16` only where the CPU runs it).
    public let attentionPrecision: Attention.Precision

    /// `threads > 1` parallelizes weight products over output columns, norms and rotary over
    /// row chunks, and attention over heads. BLAS calls are always single-threaded (OpenBLAS
    /// is set to one thread, process-wide): our own split lets 16-bit weights be widened by
    /// the thread that uses them, norms, rotary and softmax run in parallel too, and
    /// OpenBLAS's threaded path can deadlock when several stages in one process call it at the
    /// same time.
    /// `attention` fixes the precision of attention's products (nil: the default described at
    /// `attentionPrecision`).
    public init(weights: StageWeights, threads: Int = 1, attention: Attention.Precision? = nil) {
        self.weights = weights
        self.threads = max(1, threads)
        products = WeightProduct(threads: threads)
        scores = (0..<max(1, threads)).map { _ in FloatBuffer(capacity: 1) }
        attentionPrecision = Stage.attentionPrecision(
            format: weights.format, headDimension: weights.config.headDimension,
            asked: attention?.rawValue ?? ProcessInfo.processInfo.environment["L2PD_ATTENTION"])
        BLAS.setThreads(1)
        rotary = RotaryTable(
            headDimension: weights.config.headDimension, theta: weights.config.ropeTheta,
            positions: weights.config.maxSequenceLength)
    }

    static func attentionPrecision(format: WeightFormat, headDimension: Int, asked: String?) -> Attention.Precision {
        let possible = Attention.supportsBF16(headDimension: headDimension)
        switch asked.flatMap(Attention.Precision.init(rawValue:)) {
        case .f32: return .f32
        case .bf16: return possible ? .bf16 : .f32
        case nil: return format == .int8 && possible ? .bf16 : .f32
        }
    }

    /// Drops least recently used caches (never one of `keeping`) until one of `bytes` more fits.
    private func makeRoom(bytes: Int, keeping: Set<UInt64>) {
        while !caches.isEmpty,
            caches.count >= cacheLimits.maxSequences || cacheByteCount + bytes > cacheLimits.maxBytes,
            let victim = caches.filter({ !keeping.contains($0.key) }).min(by: { $0.value.lastUse < $1.value.lastUse })?.key
        {
            caches[victim] = nil
            evicted.append(victim)
            if evicted.count > 4096 { evicted.removeFirst(evicted.count - 4096) }
        }
    }

    /// Bytes of K/V cache one sequence of `length` positions keeps on this stage (F32 keys and
    /// values for each of its layers).
    public func cacheBytes(length: Int) -> Int {
        2 * weights.blocks.count * length * config.kvDimension * MemoryLayout<Float>.size
    }

    /// Bytes of scratch held for passes (activations, scores, weight conversion tiles).
    public var scratchBytes: Int {
        ([x, normed, qkv, attention, gateUp, logits] + scores).reduce(0) { $0 + $1.capacity * 4 } + products.scratchBytes
    }

    /// Number of sequences with a kept K/V cache on this stage.
    public var cachedSequenceCount: Int { caches.count }

    /// Bytes held by kept K/V caches.
    public var cacheByteCount: Int {
        caches.values.reduce(0) { $0 + 2 * $1.keys.count * $1.keys[0].capacity * 4 }
    }

    /// Frees the K/V cache of `sequenceID` (no-op if it has none).
    public func release(_ sequenceID: UInt64) { caches[sequenceID] = nil }

    /// Frees every K/V cache.
    public func releaseAll() { caches.removeAll() }

    /// Runs the batch through this stage's layers. The first stage takes `.tokens`, later
    /// stages `.hidden`; the last stage returns `.readouts` (one per sequence, in batch order),
    /// the others `.hidden` for the next stage.
    public func forward(_ batch: [SequenceForward], input: StageInput) throws -> StageOutput {
        let c = config
        let d = c.dModel
        let kvd = c.kvDimension
        var rows = 0
        var longest = 0
        var seen = Set<UInt64>()
        for s in batch {
            try validate(s)
            guard seen.insert(s.sequenceID).inserted else { throw StageError.duplicateSequence(sequenceID: s.sequenceID) }
            rows += s.computed.count
            longest = max(longest, s.computed.count * s.length)
            if attentionPrecision == .bf16 {
                let bytes = Attention.bf16ScratchBytes(
                    queryRows: s.computed.count, keyRows: s.length, headDimension: c.headDimension)
                longest = max(longest, (bytes + 3) / 4)
            }
        }
        reserve(rows: rows, scoreCount: longest)

        positions.removeAll(keepingCapacity: true)
        for s in batch { positions.append(contentsOf: s.computed) }

        switch input {
        case .tokens(let tokens):
            guard let embedding = weights.embedding else { throw StageError.inputKind(expected: "hidden states") }
            guard tokens.count == rows else { throw StageError.rowCount(expected: rows, found: tokens.count) }
            for (r, t) in tokens.enumerated() {
                guard t >= 0 && t < c.embeddingSize else {
                    throw StageError.tokenOutOfRange(token: t, embeddingSize: c.embeddingSize)
                }
                embedding.convert(rows: t..<(t + 1), into: x.pointer + r * d)
            }
        case .hidden(let hidden):
            guard weights.embedding == nil else { throw StageError.inputKind(expected: "token ids") }
            guard hidden.count == rows * d else { throw StageError.rowCount(expected: rows, found: hidden.count / d) }
            hidden.withUnsafeBufferPointer { x.pointer.update(from: $0.baseAddress!, count: rows * d) }
        }

        // Create or resize the caches this pass will write, within the cache limits.
        passes += 1
        let inBatch = Set(batch.map(\.sequenceID))
        for s in batch where s.cache == .refresh {
            if let existing = caches[s.sequenceID], existing.capacity >= s.length {
                existing.storedLength = s.length
            } else {
                caches[s.sequenceID] = nil
                let bytes = cacheBytes(length: s.length)
                makeRoom(bytes: bytes, keeping: inBatch)
                let cache = SequenceCache(layers: weights.blocks.count, capacity: s.length, kvDimension: kvd)
                cache.storedLength = s.length
                caches[s.sequenceID] = cache
            }
        }
        for s in batch { caches[s.sequenceID]?.lastUse = passes }

        for (layer, block) in weights.blocks.enumerated() {
            runBlock(block, layer: layer, batch: batch, rows: rows)
        }

        if weights.isLast {
            return .readouts(readout(batch))
        }
        return .hidden(Array(UnsafeBufferPointer(start: x.pointer, count: rows * d)))
    }

    private func validate(_ s: SequenceForward) throws {
        guard s.length >= 1, s.length <= config.maxSequenceLength else {
            throw StageError.sequenceTooLong(length: s.length, maximum: config.maxSequenceLength)
        }
        let full = s.computed == 0..<s.length
        guard !s.computed.isEmpty, s.computed.lowerBound >= 0, s.computed.upperBound <= s.length,
            s.cache == .reuse || full
        else {
            throw StageError.invalidRange(sequenceID: s.sequenceID, computed: s.computed, length: s.length)
        }
        if s.cache == .reuse {
            guard let cache = caches[s.sequenceID] else {
                if evicted.contains(s.sequenceID) {
                    throw StageError.cacheEvicted(
                        sequenceID: s.sequenceID, maxSequences: cacheLimits.maxSequences, maxBytes: cacheLimits.maxBytes)
                }
                throw StageError.missingCache(sequenceID: s.sequenceID)
            }
            guard cache.storedLength >= s.length else {
                throw StageError.cacheTooShort(sequenceID: s.sequenceID, cached: cache.storedLength, length: s.length)
            }
        }
        if weights.isLast {
            for p in s.readPositions where !s.computed.contains(p) {
                throw StageError.readPositionOutside(sequenceID: s.sequenceID, position: p, computed: s.computed)
            }
        }
    }

    private func reserve(rows: Int, scoreCount: Int) {
        let c = config
        for buffer in [x, normed, attention] { buffer.reserve(rows * c.dModel) }
        qkv.reserve(rows * (c.dModel + 2 * c.kvDimension))
        gateUp.reserve(rows * 2 * c.mlpHiddenSize)
        for buffer in scores { buffer.reserve(scoreCount) }
    }

    /// One LLaDA block: `h = x + attn_out(attn(rope(q), rope(k), v))` on `attn_norm(x)`, then
    /// `y = h + ff_out(silu(ff_proj(m)) * up_proj(m))` on `m = ff_norm(h)`.
    private func runBlock(_ w: BlockWeights, layer: Int, batch: [SequenceForward], rows: Int) {
        let c = config
        let d = c.dModel
        let kvd = c.kvDimension
        let width = d + 2 * kvd
        let hidden = c.mlpHiddenSize
        // Element-wise passes over few rows run on the calling thread: waking another costs more.
        let chunks = Parallel.chunks(rows, parts: rows * hidden < 1 << 17 ? 1 : threads)
        let (x, normed, qkv, attention, gateUp) = (x.pointer, normed.pointer, qkv.pointer, attention.pointer, gateUp.pointer)

        Parallel.run(chunks.count) { i in
            let r = chunks[i]
            VectorMath.rmsNorm(
                x + r.lowerBound * d, weight: w.attnNorm.pointer, rows: r.count, dimension: d, epsilon: c.rmsNormEpsilon,
                out: normed + r.lowerBound * d)
        }
        products.multiply(normed, lda: d, m: rows, weight: w.qkv, c: qkv, ldc: width)
        positions.withUnsafeBufferPointer { p in
            let positions = p.baseAddress!
            Parallel.run(chunks.count) { i in
                let r = chunks[i]
                rotary.apply(
                    qkv + r.lowerBound * width, rows: r.count, rowStride: width, heads: c.heads, positions: positions + r.lowerBound)
                rotary.apply(
                    qkv + r.lowerBound * width + d, rows: r.count, rowStride: width, heads: c.kvHeads, positions: positions + r.lowerBound)
            }
        }

        // Where each sequence's keys and values live: fresh in `qkv` without a cache,
        // otherwise in the cache after this pass's rows are written into it.
        var work: [(row: Int, sequence: Int, head: Int)] = []
        var sources: [(keys: UnsafePointer<Float>, values: UnsafePointer<Float>, stride: Int)] = []
        var rowStart = 0
        for (index, s) in batch.enumerated() {
            let fresh = qkv + rowStart * width + d
            if s.cache == .none {
                sources.append((UnsafePointer(fresh), UnsafePointer(fresh + kvd), width))
            } else {
                let cache = caches[s.sequenceID]!
                let keys = cache.keys[layer].pointer
                let values = cache.values[layer].pointer
                for j in 0..<s.computed.count {
                    let row = fresh + j * width
                    (keys + (s.computed.lowerBound + j) * kvd).update(from: row, count: kvd)
                    (values + (s.computed.lowerBound + j) * kvd).update(from: row + kvd, count: kvd)
                }
                sources.append((UnsafePointer(keys), UnsafePointer(values), kvd))
            }
            for h in 0..<c.heads { work.append((rowStart, index, h)) }
            rowStart += s.computed.count
        }
        let workChunks = Parallel.chunks(work.count, parts: threads)
        Parallel.run(workChunks.count) { t in
            for item in workChunks[t].map({ work[$0] }) {
                let s = batch[item.sequence]
                let source = sources[item.sequence]
                if attentionPrecision == .bf16 {
                    Attention.forwardBF16(
                        queries: qkv + item.row * width, queryStride: width, queryRows: s.computed.count,
                        keys: source.keys, values: source.values, kvStride: source.stride, keyRows: s.length,
                        heads: c.heads, kvHeads: c.kvHeads, headDimension: c.headDimension, head: item.head,
                        output: attention + item.row * d, outputStride: d, scratch: UnsafeMutableRawPointer(scores[t].pointer))
                    continue
                }
                Attention.forward(
                    queries: qkv + item.row * width, queryStride: width, queryRows: s.computed.count,
                    keys: source.keys, values: source.values, kvStride: source.stride, keyRows: s.length,
                    heads: c.heads, kvHeads: c.kvHeads, headDimension: c.headDimension,
                    output: attention + item.row * d, outputStride: d,
                    scores: scores[t].pointer, onlyHeads: item.head..<(item.head + 1))
            }
        }

        // Residual adds ride on the matrix products (beta = 1).
        products.multiply(attention, lda: d, m: rows, weight: w.attnOut, beta: 1, c: x, ldc: d)
        Parallel.run(chunks.count) { i in
            let r = chunks[i]
            VectorMath.rmsNorm(
                x + r.lowerBound * d, weight: w.ffNorm.pointer, rows: r.count, dimension: d, epsilon: c.rmsNormEpsilon,
                out: normed + r.lowerBound * d)
        }
        products.multiply(normed, lda: d, m: rows, weight: w.gateUp, c: gateUp, ldc: 2 * hidden)
        Parallel.run(chunks.count) { i in
            for j in chunks[i] {
                VectorMath.siluGate(gateUp + j * 2 * hidden, up: gateUp + j * 2 * hidden + hidden, count: hidden)
            }
        }
        products.multiply(gateUp, lda: 2 * hidden, m: rows, weight: w.ffOut, beta: 1, c: x, ldc: d)
    }

    /// Final norm and LM head on the read positions only: fills `logits` with
    /// `[read positions of the batch, embeddingSize]` and returns the number of rows.
    private func headLogits(_ batch: [SequenceForward]) -> Int {
        let c = config
        let d = c.dModel
        let total = batch.reduce(0) { $0 + $1.readPositions.count }
        guard total > 0 else { return 0 }
        normed.reserve(total * d)
        logits.reserve(total * c.embeddingSize)
        var row = 0
        var rowStart = 0
        for s in batch {
            for p in s.readPositions {
                let source = x.pointer + (rowStart + p - s.computed.lowerBound) * d
                VectorMath.rmsNorm(
                    source, weight: weights.finalNorm!.pointer, rows: 1, dimension: d, epsilon: c.rmsNormEpsilon,
                    out: normed.pointer + row * d)
                row += 1
            }
            rowStart += s.computed.count
        }
        products.multiply(normed.pointer, lda: d, m: total, weight: weights.head!, c: logits.pointer, ldc: c.embeddingSize)
        return total
    }

    /// Runs the batch on the last stage and returns the raw logits of every read position,
    /// `[positions, embeddingSize]` row-major. For tests and reference checks only: decoding
    /// uses readouts, and logits never cross a stage boundary.
    func forwardLogits(_ batch: [SequenceForward], input: StageInput) throws -> [Float] {
        precondition(weights.isLast, "logits come from the last stage")
        let saved = batch.map { s -> SequenceForward in
            var s = s
            s.readPositions = []
            return s
        }
        _ = try forward(saved, input: input)
        let rows = headLogits(batch)
        return Array(UnsafeBufferPointer(start: logits.pointer, count: rows * config.embeddingSize))
    }

    /// Per read position, the argmax (or Gumbel-perturbed argmax) and its softmax probability,
    /// computed stably as `1 / sum(exp(l - max))`.
    private func readout(_ batch: [SequenceForward]) -> [Readout] {
        let c = config
        let vocabulary = c.embeddingSize
        guard headLogits(batch) > 0 else { return batch.map { _ in Readout(positions: [], tokens: [], confidences: []) } }
        var readouts: [Readout] = []
        readouts.reserveCapacity(batch.count)
        var row = 0
        for s in batch {
            var out = Readout(positions: s.readPositions, tokens: [], confidences: [])
            out.tokens.reserveCapacity(s.readPositions.count)
            out.confidences.reserveCapacity(s.readPositions.count)
            for p in s.readPositions {
                let l = logits.pointer + row * vocabulary
                let token =
                    s.sampling.temperature > 0
                    ? GumbelNoise.sample(logits: l, count: vocabulary, sampling: s.sampling, position: p)
                    : VectorMath.argmax(l, count: vocabulary)
                // Softmax in place: l becomes probabilities.
                let top = VectorMath.max(l, count: vocabulary)
                let sum = VectorMath.expShifted(l, count: vocabulary, shift: top)
                let inverse = 1 / sum
                out.tokens.append(token)
                out.confidences.append(l[token] * inverse)
                if s.wantsEOSProbability { out.eosProbabilities.append(l[c.eosTokenID] * inverse) }
                if s.topK > 0 {
                    VectorMath.topK(l, count: vocabulary, k: s.topK) { index, value in
                        out.topTokens.append(index)
                        out.topProbabilities.append(value * inverse)
                    }
                }
                row += 1
            }
            readouts.append(out)
        }
        return readouts
    }
}
