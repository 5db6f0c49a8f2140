import CBLAS

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
    /// loads) when it picked a weaker one than the CPU runs: OpenBLAS 0.3.21 takes AMD Zen 4,
    /// which has AVX-512, for a Haswell-class (AVX2) CPU, and its SkylakeX kernels are about
    /// 1.8x faster there. `cpuFlags` are the flags of `/proc/cpuinfo`.
    public static func betterCoreType(current: String, cpuFlags: Set<String>) -> String? {
        let avx512 = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]
        guard ["haswell", "zen"].contains(current.lowercased()), avx512.allSatisfy(cpuFlags.contains) else { return nil }
        return "SKYLAKEX"
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
