import Foundation
import L2PDStageIO

/// LLaDA's temperature sampling: `argmax(exp(l) / (-log u)^T)` over the vocabulary, computed
/// in `Double` as the equivalent `argmax(l - T log(-log u))`. The uniform `u` for each
/// (seed, step, position, token) comes from a counter-based hash, so noise is reproducible and
/// does not depend on which machine or batch computes it.
public enum GumbelNoise {
    public static func sample(logits: UnsafePointer<Float>, count: Int, sampling: Sampling, position: Int) -> Int {
        let temperature = Double(sampling.temperature)
        let base = mix(
            sampling.seed
                ^ mix(
                    UInt64(truncatingIfNeeded: sampling.step) &* 0x9E37_79B9_7F4A_7C15
                        &+ UInt64(truncatingIfNeeded: position)))
        var best = 0
        var bestScore = -Double.infinity
        for i in 0..<count {
            let u = uniform(mix(base &+ UInt64(i)))
            let score = Double(logits[i]) - temperature * Foundation.log(-Foundation.log(u))
            if score > bestScore {
                bestScore = score
                best = i
            }
        }
        return best
    }

    /// A uniform draw in the open interval (0, 1) from 53 bits of `bits`.
    @inline(__always)
    static func uniform(_ bits: UInt64) -> Double {
        (Double(bits >> 11) + 0.5) * 0x1.0p-53
    }

    /// SplitMix64's finalizer: a bijective 64-bit mix.
    @inline(__always)
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
