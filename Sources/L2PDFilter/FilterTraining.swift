import Foundation
import L2PDKernels

/// Training records for the filter: per decoding step, the filter's input features and,
/// per block position, whether the current prediction equals the reference (label) and
/// whether the position was still masked.
public struct FilterDataset: Sendable, Equatable {
    public var blockLength: Int
    public var features: FilterFeatures
    /// `[count, inputWidth]`.
    public var inputs: [Float] = []
    /// `[count, blockLength]`, 0 or 1.
    public var labels: [Float] = []
    /// `[count, blockLength]`, 1 where the position was masked at that step.
    public var masked: [Float] = []

    public init(blockLength: Int, features: FilterFeatures) {
        self.blockLength = blockLength
        self.features = features
    }

    public var inputWidth: Int { features.width(blockLength: blockLength) }
    public var count: Int { labels.count / max(blockLength, 1) }

    public mutating func append(input: [Float], labels rowLabels: [Float], masked rowMasked: [Float]) {
        precondition(input.count == inputWidth && rowLabels.count == blockLength && rowMasked.count == blockLength)
        inputs += input
        labels += rowLabels
        masked += rowMasked
    }

    /// The records at `indices`, in that order.
    public func subset(_ indices: [Int]) -> FilterDataset {
        var out = FilterDataset(blockLength: blockLength, features: features)
        out.inputs.reserveCapacity(indices.count * inputWidth)
        for i in indices {
            out.inputs += inputs[(i * inputWidth)..<((i + 1) * inputWidth)]
            out.labels += labels[(i * blockLength)..<((i + 1) * blockLength)]
            out.masked += masked[(i * blockLength)..<((i + 1) * blockLength)]
        }
        return out
    }

    /// Shuffled 80/10/10 split into train, validation and test.
    public func split(seed: UInt64) -> (train: FilterDataset, validation: FilterDataset, test: FilterDataset) {
        var order = Array(0..<count)
        var random = SplitMix(seed: seed)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, random.below(i + 1)) }
        let a = count * 8 / 10
        let b = count * 9 / 10
        return (subset(Array(order[..<a])), subset(Array(order[a..<b])), subset(Array(order[b...])))
    }
}

/// Precision and recall of accepting masked positions at a threshold.
public struct FilterMetrics: Sendable, Equatable {
    public var loss: Double
    public var precision: Double
    public var recall: Double
    public var accepted: Int
}

/// Full-batch AdamW on binary cross-entropy with logits, written on BLAS (no training
/// library): the forward and backward passes are four matrix products each.
public struct FilterTrainer {
    public var learningRate: Float = 3e-3
    public var weightDecay: Float = 0.01
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8

    public init() {}

    /// Mean BCE-with-logits over every position, and the gradients of the parameters.
    public static func lossAndGradients(_ net: FilterNetwork, _ data: FilterDataset) -> (loss: Double, gradients: FilterNetwork) {
        let n = data.count
        let b = net.blockLength
        let h = net.hiddenWidth
        let width = net.inputWidth
        var hidden = [Float](repeating: 0, count: n * h)
        var logits = [Float](repeating: 0, count: n * b)
        data.inputs.withUnsafeBufferPointer { x in
            hidden.withUnsafeMutableBufferPointer { h in
                logits.withUnsafeMutableBufferPointer { net.forward(x.baseAddress!, rows: n, hidden: h.baseAddress!, out: $0.baseAddress!) }
            }
        }
        var loss = 0.0
        let scale = 1 / Float(n * b)
        var dz2 = logits
        for i in 0..<(n * b) {
            let z = logits[i]
            let y = data.labels[i]
            loss += Double(max(z, 0) - z * y + log1p(exp(-abs(z))))
            dz2[i] = (1 / (1 + exp(-z)) - y) * scale
        }
        var grads = net
        grads.b2 = columnSums(dz2, rows: n, columns: b)
        var dh = [Float](repeating: 0, count: n * h)
        dz2.withUnsafeBufferPointer { d in
            hidden.withUnsafeBufferPointer { hid in
                grads.w2.withUnsafeMutableBufferPointer {
                    BLAS.gemm(
                        transposeA: true, transposeB: false, m: b, n: h, k: n, a: d.baseAddress!, lda: b, b: hid.baseAddress!, ldb: h,
                        c: $0.baseAddress!, ldc: h)
                }
            }
            net.w2.withUnsafeBufferPointer { w in
                dh.withUnsafeMutableBufferPointer {
                    BLAS.gemm(
                        transposeB: false, m: n, n: h, k: b, a: d.baseAddress!, lda: b, b: w.baseAddress!, ldb: h, c: $0.baseAddress!,
                        ldc: h)
                }
            }
        }
        for i in 0..<(n * h) where hidden[i] <= 0 { dh[i] = 0 }
        grads.b1 = columnSums(dh, rows: n, columns: h)
        dh.withUnsafeBufferPointer { d in
            data.inputs.withUnsafeBufferPointer { x in
                grads.w1.withUnsafeMutableBufferPointer {
                    BLAS.gemm(
                        transposeA: true, transposeB: false, m: h, n: width, k: n, a: d.baseAddress!, lda: h, b: x.baseAddress!, ldb: width,
                        c: $0.baseAddress!, ldc: width)
                }
            }
        }
        return (loss / Double(n * b), grads)
    }

    static func columnSums(_ x: [Float], rows: Int, columns: Int) -> [Float] {
        var out = [Float](repeating: 0, count: columns)
        for r in 0..<rows { for c in 0..<columns { out[c] += x[r * columns + c] } }
        return out
    }

    /// Loss over all positions; precision and recall over masked positions accepted at `tau`.
    public static func evaluate(_ net: FilterNetwork, _ data: FilterDataset, tau: Float) -> FilterMetrics {
        let n = data.count
        let b = net.blockLength
        var hidden = [Float](repeating: 0, count: n * net.hiddenWidth)
        var logits = [Float](repeating: 0, count: n * b)
        data.inputs.withUnsafeBufferPointer { x in
            hidden.withUnsafeMutableBufferPointer { h in
                logits.withUnsafeMutableBufferPointer { net.forward(x.baseAddress!, rows: n, hidden: h.baseAddress!, out: $0.baseAddress!) }
            }
        }
        var loss = 0.0
        var truePositive = 0
        var accepted = 0
        var positives = 0
        for i in 0..<(n * b) {
            let z = logits[i]
            let y = data.labels[i]
            loss += Double(max(z, 0) - z * y + log1p(exp(-abs(z))))
            guard data.masked[i] > 0 else { continue }
            let accept = 1 / (1 + exp(-z)) > tau
            if y > 0 { positives += 1 }
            if accept {
                accepted += 1
                if y > 0 { truePositive += 1 }
            }
        }
        return FilterMetrics(
            loss: loss / Double(max(n * b, 1)), precision: accepted > 0 ? Double(truePositive) / Double(accepted) : 1,
            recall: positives > 0 ? Double(truePositive) / Double(positives) : 0, accepted: accepted)
    }

    /// Trains `net` for `epochs` full-batch AdamW steps and returns the weights with the lowest
    /// validation loss seen at a report (early stopping). `progress(epoch, trainLoss,
    /// validationLoss)` is called every `reportEvery` epochs and at the end.
    public func train(
        _ start: FilterNetwork, train: FilterDataset, validation: FilterDataset, epochs: Int, reportEvery: Int = 50,
        progress: (Int, Double, Double) -> Void = { _, _, _ in }
    ) -> FilterNetwork {
        var net = start
        var best: FilterNetwork? = nil
        var bestLoss = Double.infinity
        var m = FilterNetwork.zerosLike(net)
        var v = m
        for epoch in 1...max(1, epochs) {
            let (loss, g) = FilterTrainer.lossAndGradients(net, train)
            let correction1 = 1 - pow(beta1, Float(epoch))
            let correction2 = 1 - pow(beta2, Float(epoch))
            func step(_ p: inout [Float], _ grad: [Float], _ m: inout [Float], _ v: inout [Float]) {
                for i in p.indices {
                    m[i] = beta1 * m[i] + (1 - beta1) * grad[i]
                    v[i] = beta2 * v[i] + (1 - beta2) * grad[i] * grad[i]
                    p[i] *= 1 - learningRate * weightDecay
                    p[i] -= learningRate * (m[i] / correction1) / ((v[i] / correction2).squareRoot() + epsilon)
                }
            }
            step(&net.w1, g.w1, &m.w1, &v.w1)
            step(&net.b1, g.b1, &m.b1, &v.b1)
            step(&net.w2, g.w2, &m.w2, &v.w2)
            step(&net.b2, g.b2, &m.b2, &v.b2)
            if epoch % reportEvery == 0 || epoch == epochs {
                let validationLoss = FilterTrainer.evaluate(net, validation, tau: net.tau).loss
                if validation.count > 0 && validationLoss < bestLoss {
                    bestLoss = validationLoss
                    best = net
                }
                progress(epoch, loss, validationLoss)
            }
        }
        return best ?? net
    }

    /// The smallest tau on a grid whose precision on `data` reaches `targetPrecision`
    /// (the most recall at that precision), or nil if none does.
    public static func calibrate(_ net: FilterNetwork, _ data: FilterDataset, targetPrecision: Double) -> (
        tau: Float, metrics: FilterMetrics
    )? {
        let grid = stride(from: 0.5, through: 0.999, by: 0.005).map { Float($0) }
        for tau in grid {
            let metrics = evaluate(net, data, tau: tau)
            if metrics.accepted > 0 && metrics.precision >= targetPrecision { return (tau, metrics) }
        }
        return nil
    }
}

extension FilterNetwork {
    static func zerosLike(_ net: FilterNetwork) -> FilterNetwork {
        var z = net
        z.w1 = [Float](repeating: 0, count: net.w1.count)
        z.b1 = [Float](repeating: 0, count: net.b1.count)
        z.w2 = [Float](repeating: 0, count: net.w2.count)
        z.b2 = [Float](repeating: 0, count: net.b2.count)
        return z
    }
}
