// swift-tools-version:6.0
import PackageDescription

// Dependencies point one way: l2pd (CLI) -> evaluation -> cluster -> engine -> decoding ->
// model -> kernels -> C shims; the stage values (StageIO) are a leaf that model, decoding and
// the wire protocol share.
let package = Package(
    name: "Learn2PD",
    products: [
        .executable(name: "l2pd", targets: ["l2pd"])
    ],
    targets: [
        // C libraries from Debian packages.
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CNNG",
            providers: [.apt(["libnng-dev"])]
        ),
        // Certificate checks and a diagnostic TLS handshake on mbedTLS (nng's TLS library), so a
        // failed tls+tcp:// link is reported with its cause.
        .target(
            name: "CTLSCheck",
            linkerSettings: [.linkedLibrary("mbedtls"), .linkedLibrary("mbedx509"), .linkedLibrary("mbedcrypto")]),
        // Matrix products on oneDNN (Debian's libdnnl, run-time ISA dispatch): f32, and int8 on
        // VNNI where the CPU has it; weights packed once.
        .target(name: "CDNNLMatmul", linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]),
        // The forward pass's element-wise kernels (softmax pieces, RMSNorm, SwiGLU, rotary) built for
        // AVX-512, AVX2+FMA and baseline, picked at run time.
        .target(name: "CElementwise"),
        // One attention head with BF16 products (AVX-512 BF16), for the int8 fast path.
        .target(name: "CAttention", dependencies: ["CElementwise"]),
        // The values that cross stage boundaries: forward requests, cache directives, readouts.
        .target(name: "L2PDStageIO"),
        // Math on contiguous Float buffers; knows nothing about models.
        .target(name: "L2PDKernels", dependencies: ["CBLAS", "CDNNLMatmul", "CElementwise", "CAttention"]),
        // LLaDA config, safetensors, layer-range stages, KV cache, readout.
        .target(name: "L2PDModel", dependencies: ["L2PDKernels", "L2PDStageIO"]),
        // Byte-level BPE from tokenizer.json and the LLaDA-Instruct chat format.
        .target(name: "L2PDTokenizer"),
        // Learn2PD's filter: the MLP, its file format, full-batch AdamW training on BLAS.
        .target(name: "L2PDFilter", dependencies: ["L2PDModel", "L2PDKernels"]),
        // The sampler: canvas, blocks, unmask policies, cache modes, EoTP, statistics.
        .target(name: "L2PDDecoding", dependencies: ["L2PDModel", "L2PDFilter", "L2PDStageIO"]),
        // Text in, text out: requests, tokenizer + chat format + decoder, chat sessions.
        .target(name: "L2PDEngine", dependencies: ["L2PDDecoding", "L2PDTokenizer", "L2PDModel"]),
        // Seeded task suite with ground truth and answer checking.
        .target(name: "L2PDTasks"),
        // The tiny default model and its filter, shipped as resources.
        .target(name: "L2PDDefaultModel", resources: [.copy("Model"), .copy("Filter")]),
        // The cluster's binary frame codec (proto/PROTOCOL.md): messages, encode, validating decode.
        .target(name: "L2PDProtocol", dependencies: ["L2PDStageIO"]),
        // nng sockets for the cluster: pair (coordinator to worker), request/reply (clients).
        .target(name: "L2PDTransport", dependencies: ["CNNG", "CTLSCheck"]),
        // Cluster roles: worker node, networked pipeline, coordinator actor, HTTP API, cluster files.
        .target(
            name: "L2PDCluster",
            dependencies: [
                "L2PDEngine", "L2PDDecoding", "L2PDProtocol", "L2PDTransport", "L2PDModel", "L2PDFilter", "L2PDTokenizer",
                "L2PDStageIO",
            ]),
        // Measuring: evaluation grids over the task suite, Pareto plots, filter data collection,
        // the load test and its HTTP completion client.
        .target(
            name: "L2PDEvaluation",
            dependencies: [
                "L2PDEngine", "L2PDDecoding", "L2PDModel", "L2PDFilter", "L2PDTasks", "L2PDTransport", "L2PDCluster",
            ]),
        // Command-line parsing: option declarations, the parser, the shared decoding flags.
        .target(name: "L2PDCommandLine", dependencies: ["L2PDDecoding"]),
        // The command-line tool: commands that wire the libraries together and print.
        .executableTarget(
            name: "l2pd",
            dependencies: [
                "L2PDEngine", "L2PDDecoding", "L2PDModel", "L2PDTokenizer", "L2PDTasks", "L2PDFilter", "L2PDDefaultModel", "L2PDCluster",
                "L2PDTransport", "L2PDCommandLine", "L2PDEvaluation", "L2PDStageIO", "L2PDKernels",
            ]
        ),
        .testTarget(name: "L2PDStageIOTests", dependencies: ["L2PDStageIO"]),
        .testTarget(
            name: "L2PDEvaluationTests",
            dependencies: ["L2PDEvaluation", "L2PDEngine", "L2PDDecoding", "L2PDTasks", "L2PDDefaultModel", "L2PDModel", "L2PDCluster"]),
        .testTarget(name: "L2PDCommandLineTests", dependencies: ["L2PDCommandLine", "L2PDDecoding"]),
        .testTarget(name: "L2PDTransportTests", dependencies: ["L2PDTransport"]),
        .testTarget(name: "L2PDEngineTests", dependencies: ["L2PDEngine", "L2PDDecoding"]),
        .testTarget(name: "L2PDKernelsTests", dependencies: ["L2PDKernels", "CElementwise", "CAttention"]),
        .testTarget(
            name: "L2PDModelTests",
            dependencies: ["L2PDModel", "L2PDStageIO"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "L2PDTokenizerTests",
            dependencies: ["L2PDTokenizer"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(name: "L2PDTasksTests", dependencies: ["L2PDTasks"]),
        .testTarget(name: "L2PDFilterTests", dependencies: ["L2PDFilter", "L2PDModel"], resources: [.copy("Fixtures")]),
        .testTarget(name: "L2PDProtocolTests", dependencies: ["L2PDProtocol", "L2PDStageIO"]),
        .testTarget(
            name: "L2PDClusterTests",
            dependencies: [
                "L2PDCluster", "L2PDDefaultModel", "L2PDEngine", "L2PDDecoding", "L2PDModel", "L2PDProtocol", "L2PDTransport",
                "L2PDTasks", "L2PDFilter", "L2PDTokenizer", "L2PDStageIO", "L2PDEvaluation",
            ],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "L2PDDecodingTests",
            dependencies: ["L2PDDecoding", "L2PDModel", "L2PDDefaultModel", "L2PDFilter", "L2PDStageIO"],
            resources: [.copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
