import Testing

@testable import L2PDKernels

/// The choice of OpenBLAS kernels is a pure function of the CPU's flags, the kernels OpenBLAS
/// picked and the user's own setting.
struct KernelChoiceTests {
    static let sse: Set<String> = ["fpu", "sse", "sse2", "pni", "ssse3", "sse4_1", "sse4_2"]
    static let avx2 = sse.union(["avx", "avx2", "fma", "f16c"])
    /// The 2-core Xeon VM OpenBLAS 0.3.21 did not recognise: F, CD, BW, DQ, VL, BF16, FP16, VNNI.
    static let avx512 = avx2.union([
        "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16", "avx512_fp16", "avx512_vnni",
    ])
    static let weakNames = ["Prescott", "Nehalem", "Sandybridge", "Core2", "Atom", "Barcelona", "Bulldozer", "unknown", ""]

    @Test func anAVX512CPUGetsAVX512KernelsWhateverOpenBLASPicked() {
        for name in Self.weakNames + ["Haswell", "Zen", "HASWELL", "zen"] {
            #expect(BLAS.preferredCoreType(current: name, cpuFlags: Self.avx512, userValue: nil) == "SKYLAKEX", "\(name)")
        }
        for name in ["SkylakeX", "Cooperlake", "SapphireRapids", "COOPERLAKE"] {
            #expect(BLAS.preferredCoreType(current: name, cpuFlags: Self.avx512, userValue: nil) == nil, "\(name)")
        }
    }

    @Test func avx512NeedsTheWholeFoundationSet() {
        // AVX-512F alone (Knights Landing lacks BW, DQ, VL) is not enough for SkylakeX's kernels.
        let partial = Self.avx2.union(["avx512f", "avx512cd"])
        #expect(BLAS.preferredCoreType(current: "Prescott", cpuFlags: partial, userValue: nil) == "HASWELL")
        #expect(BLAS.preferredCoreType(current: "Haswell", cpuFlags: partial, userValue: nil) == nil)
    }

    @Test func anAVX2CPUGetsHaswellKernelsOnlyWhenOpenBLASPickedWeaker() {
        for name in Self.weakNames {
            #expect(BLAS.preferredCoreType(current: name, cpuFlags: Self.avx2, userValue: nil) == "HASWELL", "\(name)")
        }
        for name in ["Haswell", "Zen"] {
            #expect(BLAS.preferredCoreType(current: name, cpuFlags: Self.avx2, userValue: nil) == nil, "\(name)")
        }
        // AVX2 without FMA (VIA, some virtual CPUs) cannot run Haswell's kernels.
        #expect(BLAS.preferredCoreType(current: "Prescott", cpuFlags: Self.sse.union(["avx", "avx2"]), userValue: nil) == nil)
    }

    @Test func olderCPUsKeepWhatOpenBLASPicked() {
        for name in Self.weakNames + ["Haswell", "SkylakeX"] {
            #expect(BLAS.preferredCoreType(current: name, cpuFlags: Self.sse, userValue: nil) == nil, "\(name)")
            #expect(BLAS.preferredCoreType(current: name, cpuFlags: [], userValue: nil) == nil, "\(name)")
        }
    }

    @Test func aValueTheUserSetIsKept() {
        for flags in [Self.sse, Self.avx2, Self.avx512] {
            for user in ["PRESCOTT", "HASWELL", "SKYLAKEX", "COOPERLAKE", ""] {
                #expect(BLAS.preferredCoreType(current: "Prescott", cpuFlags: flags, userValue: user) == nil, "\(user)")
            }
        }
    }

    @Test func theReportNamesFeaturesAndWarnsOnlyWhenKernelsAreWeaker() {
        let weak = BLAS.kernelReport(current: "Prescott", cpuFlags: Self.avx512)
        #expect(weak.features.contains("avx512f") && weak.features.contains("avx512_vnni") && weak.features.contains("Prescott"))
        #expect(weak.warning?.contains("SKYLAKEX") == true)
        #expect(BLAS.kernelReport(current: "SkylakeX", cpuFlags: Self.avx512).warning == nil)
        #expect(BLAS.kernelReport(current: "Prescott", cpuFlags: Self.avx2).warning?.contains("HASWELL") == true)
        #expect(BLAS.kernelReport(current: "Zen", cpuFlags: Self.avx2).warning == nil)
        #expect(BLAS.kernelReport(current: "Prescott", cpuFlags: Self.sse).warning == nil)
    }

    @Test func cpuinfoFlagsAreRead() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu avx2 fma avx512f\nbugs\t\t: spectre_v1\n"
        #expect(BLAS.cpuFlags(cpuinfo: cpuinfo) == ["fpu", "avx2", "fma", "avx512f"])
        #expect(BLAS.cpuFlags(cpuinfo: "processor : 0\n").isEmpty)
    }
}
