import CBLAS
import Foundation

/// Thin, typed access to the BLAS routines the engine uses. Every matrix product in the
/// project goes through `BLAS.gemm`; nothing else multiplies matrices.
public enum BLAS {
    /// Sets the number of threads OpenBLAS uses for every later call (process-wide).
    public static func setThreads(_ count: Int) {
        openblas_set_num_threads(Int32(max(1, count)))
    }

    /// The kernel set OpenBLAS picked for this CPU (`Haswell`, `SkylakeX`, ...).
    public static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// The kernel set to ask OpenBLAS for (through `OPENBLAS_CORETYPE`, read when the library
    /// loads), decided from what the CPU can do rather than from OpenBLAS's list of CPU names:
    /// OpenBLAS 0.3.21 falls back to its SSE3 `Prescott` kernels on CPUs it does not know, even
    /// with AVX-512 (a 2-core AVX-512 Xeon VM: sgemm 44-63 GFLOP/s against 207 with `SkylakeX`),
    /// and takes AMD Zen 4 for an AVX2 CPU. The rule:
    /// - a value the user set (`userValue`) is kept: nil;
    /// - with the AVX-512 foundation set (F, CD, BW, DQ, VL) and weaker kernels picked: `SKYLAKEX`.
    ///   Not `COOPERLAKE` where the CPU has AVX-512 BF16: its sgemm is the same, and on the Xeon
    ///   above the engine's default (BF16-held weights) ran 0.73 s with SkylakeX against 0.82 s.
    ///   Not `HASWELL` where AVX-512 runs on 256-bit units (Zen 4): SkylakeX's products measured
    ///   about 1.8x Haswell's on one such host, and Haswell within noise of it on another;
    /// - with AVX2 and FMA and weaker kernels picked: `HASWELL`;
    /// - otherwise nil: keep what OpenBLAS picked.
    public static func preferredCoreType(current: String, cpuFlags: Set<String>, userValue: String?) -> String? {
        guard userValue == nil else { return nil }
        let supported = KernelClass(cpuFlags: cpuFlags)
        guard KernelClass(coreName: current) < supported else { return nil }
        switch supported {
        case .avx512: return "SKYLAKEX"
        case .avx2: return "HASWELL"
        case .baseline: return nil
        }
    }

    /// The CPU flags the engine's speed depends on, in a fixed order, as `/proc/cpuinfo` names them.
    public static let reportedFlags = [
        "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16",
        "avx512_fp16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8",
    ]

    /// One line for people: the CPU's relevant flags, the kernels OpenBLAS runs, and a warning
    /// when they are weaker than the CPU supports (nil warning when they are not).
    public static func kernelReport(current: String, cpuFlags: Set<String>) -> (features: String, warning: String?) {
        let present = reportedFlags.filter(cpuFlags.contains)
        let features =
            "CPU features: \(present.isEmpty ? "none of \(reportedFlags.joined(separator: " "))" : present.joined(separator: " ")); OpenBLAS kernels: \(current); element-wise kernels: \(VectorMath.kernels); attention products with int8 weights: \(Attention.supportsBF16(headDimension: 64) ? "bf16" : "f32")"
        let supported = KernelClass(cpuFlags: cpuFlags)
        guard KernelClass(coreName: current) < supported else { return (features, nil) }
        let better = supported == .avx512 ? "SKYLAKEX" : "HASWELL"
        return (
            features,
            "warning: OpenBLAS runs its \(current) kernels, weaker than this CPU supports (\(supported.rawValue)); "
                + "unset OPENBLAS_CORETYPE or set it to \(better) for faster products"
        )
    }

    /// This machine's CPU flags, from `/proc/cpuinfo` (empty where it cannot be read).
    public static func cpuFlags() -> Set<String> {
        (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)).map { cpuFlags(cpuinfo: $0) } ?? []
    }

    /// The flags line of `/proc/cpuinfo` (empty where there is none).
    public static func cpuFlags(cpuinfo: String) -> Set<String> {
        guard let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
            let colon = line.firstIndex(of: ":")
        else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }

    /// The number of threads OpenBLAS currently uses.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// Row-major `C[m, n] = alpha * op(A) * op(B) + beta * C`, where `op(A)` is `m x k` and
    /// `op(B)` is `k x n`. With `transposeB`, `B` is stored `n x k` (PyTorch's Linear weight
    /// layout), so `x * W^T` is `gemm(transposeB: true, ...)`.
    @inlinable
    public static func gemm(
        transposeA: Bool = false, transposeB: Bool,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        cblas_sgemm(
            CblasRowMajor,
            transposeA ? CblasTrans : CblasNoTrans,
            transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k),
            alpha, a, Int32(lda), b, Int32(ldb),
            beta, c, Int32(ldc))
    }
}

/// The widest vector instructions an OpenBLAS kernel set uses, or a CPU can run.
public enum KernelClass: String, Comparable, Sendable {
    /// SSE-era kernels (`Prescott`, `Nehalem`, `Sandybridge`'s AVX1, anything OpenBLAS does not name).
    case baseline = "no AVX2"
    /// AVX2 and FMA (`Haswell`, `Zen`).
    case avx2 = "AVX2"
    /// AVX-512 (`SkylakeX`, `Cooperlake`, `SapphireRapids`).
    case avx512 = "AVX-512"

    var rank: Int {
        switch self {
        case .baseline: 0
        case .avx2: 1
        case .avx512: 2
        }
    }

    public static func < (a: KernelClass, b: KernelClass) -> Bool { a.rank < b.rank }

    /// What a CPU with these `/proc/cpuinfo` flags can run.
    public init(cpuFlags: Set<String>) {
        if ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(cpuFlags.contains) {
            self = .avx512
        } else if cpuFlags.contains("avx2") && cpuFlags.contains("fma") {
            self = .avx2
        } else {
            self = .baseline
        }
    }

    /// What an OpenBLAS kernel set (its core name, any case) uses.
    public init(coreName: String) {
        switch coreName.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": self = .avx512
        case "haswell", "zen": self = .avx2
        default: self = .baseline
        }
    }
}
