import Foundation
import L2PDKernels
import L2PDModel

/// Learn2PD's filter: `Linear(B, B) -> ReLU -> Linear(B, B)` over the block's confidences,
/// one logit per block position (section 4 of the algorithm notes); richer inputs widen the
/// first layer and may widen the hidden layer (`Linear(in, H) -> ReLU -> Linear(H, B)`).
/// Weights are PyTorch Linear layout (`[out, in]`); a position is accepted when
/// `sigmoid(logit) > tau`.
public struct FilterNetwork: Sendable, Equatable {
    public let blockLength: Int
    /// Input width: `blockLength` confidences, plus extra features when `features` says so.
    public let inputWidth: Int
    /// Hidden units (the paper's: the block length).
    public let hiddenWidth: Int
    public var w1: [Float]
    public var b1: [Float]
    public var w2: [Float]
    public var b2: [Float]
    public var tau: Float
    public var features: FilterFeatures

    public init(
        blockLength: Int, features: FilterFeatures = .confidence, hiddenWidth: Int? = nil, tau: Float = 0.96, seed: UInt64 = 0
    ) {
        self.blockLength = blockLength
        self.features = features
        self.inputWidth = features.width(blockLength: blockLength)
        self.hiddenWidth = hiddenWidth ?? blockLength
        self.tau = tau
        // PyTorch's default Linear init: U(-1/sqrt(in), 1/sqrt(in)).
        var random = SplitMix(seed: seed)
        let h = self.hiddenWidth
        let bound1 = 1 / Float(inputWidth).squareRoot()
        let bound2 = 1 / Float(h).squareRoot()
        w1 = (0..<(h * inputWidth)).map { _ in random.uniform(-bound1, bound1) }
        b1 = (0..<h).map { _ in random.uniform(-bound1, bound1) }
        w2 = (0..<(blockLength * h)).map { _ in random.uniform(-bound2, bound2) }
        b2 = (0..<blockLength).map { _ in random.uniform(-bound2, bound2) }
    }

    /// Largest hidden width accepted from a file or a flag.
    public static let maxHiddenWidth = 1024
    /// Largest block length a filter file may declare.
    public static let maxBlockLength = 4096

    public var parameterCount: Int { w1.count + b1.count + w2.count + b2.count }

    /// Logits for `rows` inputs (`[rows, inputWidth]`), written to `out` (`[rows, blockLength]`);
    /// `hidden` receives the post-ReLU activations (`[rows, hiddenWidth]`).
    public func forward(
        _ input: UnsafePointer<Float>, rows: Int, hidden: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>
    ) {
        let b = blockLength
        let h = hiddenWidth
        for r in 0..<rows {
            for j in 0..<h { hidden[r * h + j] = b1[j] }
            for j in 0..<b { out[r * b + j] = b2[j] }
        }
        w1.withUnsafeBufferPointer { w in
            BLAS.gemm(
                transposeB: true, m: rows, n: h, k: inputWidth, a: input, lda: inputWidth, b: w.baseAddress!, ldb: inputWidth, beta: 1,
                c: hidden, ldc: h)
        }
        for i in 0..<(rows * h) where hidden[i] < 0 { hidden[i] = 0 }
        w2.withUnsafeBufferPointer { w in
            BLAS.gemm(transposeB: true, m: rows, n: b, k: h, a: hidden, lda: h, b: w.baseAddress!, ldb: h, beta: 1, c: out, ldc: b)
        }
    }

    /// Logits for one input vector.
    public func logits(_ input: [Float]) -> [Float] {
        precondition(input.count == inputWidth)
        var hidden = [Float](repeating: 0, count: hiddenWidth)
        var out = [Float](repeating: 0, count: blockLength)
        input.withUnsafeBufferPointer { x in
            hidden.withUnsafeMutableBufferPointer { h in
                out.withUnsafeMutableBufferPointer { forward(x.baseAddress!, rows: 1, hidden: h.baseAddress!, out: $0.baseAddress!) }
            }
        }
        return out
    }
}

/// What the filter reads. `confidence` is the paper's input; the richer variants add one
/// feature per position and are kept only if they improve the evaluation table.
public enum FilterFeatures: String, Sendable, CaseIterable, Codable {
    /// The block's B confidences (committed positions included, zero-padded).
    case confidence
    /// Confidences, then each position's top-1 minus top-2 probability margin.
    case confidenceMargin = "confidence+margin"
    /// The block's state and its history, feature-major (B values per feature, zero-padded):
    /// confidence, masked bit, argmax persistence (steps unchanged, over `persistenceCap`, at most
    /// 1), confidence change since the previous step, top-1 minus top-2 margin, argmax is
    /// end-of-text; then two per step: the share of the block still masked and the step index
    /// in the block over the block length.
    case history

    /// Persistence counts above this read as this (the feature is `min(count, cap) / cap`).
    public static let persistenceCap = 4

    public func width(blockLength: Int) -> Int {
        switch self {
        case .confidence: return blockLength
        case .confidenceMargin: return 2 * blockLength
        case .history: return 6 * blockLength + 2
        }
    }

    /// Whether the input needs each position's top-2 probability.
    public var needsMargins: Bool { self != .confidence }
}

/// SplitMix64: a small, fully specified generator so seeded runs repeat on every platform.
public struct SplitMix: Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return GumbelNoise.mix(state &- 0x9E37_79B9_7F4A_7C15)
    }

    public mutating func uniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * Float(Double(next() >> 11) * 0x1.0p-53)
    }

    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}
