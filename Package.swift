// swift-tools-version:6.0
// MaskPilot: data-parallel MP-Former / Mask2Former training on CPU clusters.
import Foundation
import PackageDescription

let package = Package(
    name: "MaskPilot",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "maskpilot", targets: ["maskpilot"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // System libraries: a module map and a shim.h of static inline getters for C macros.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5",
                       providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CImageCodecs", path: "Sources/CImageCodecs", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev", "libjpeg-dev"])]),
        // Debian's libdnnl-dev ships no pkg-config file; its headers and library are on the default paths.
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL", providers: [.apt(["libdnnl-dev"])]),

        .target(name: "Kernels", dependencies: ["CBLAS", "CDNNL"]),
        .target(name: "TensorCore", dependencies: ["Kernels"]),
        .target(name: "NN", dependencies: ["TensorCore"]),
        .target(name: "Optim", dependencies: ["TensorCore", "Kernels"]),
        .target(name: "Mask2FormerModel", dependencies: ["NN", "TensorCore", "Kernels"]),
        .target(name: "Checkpoint", dependencies: ["CHDF5", "TensorCore"]),
        .target(name: "Datasets", dependencies: ["CImageCodecs", "TensorCore"]),
        .target(name: "Distributed", dependencies: ["CMPI", "TensorCore"]),
        .target(name: "Evaluation", dependencies: ["Kernels", "TensorCore", "Datasets", "Distributed", "Mask2FormerModel"]),
        .target(name: "Visualization", dependencies: ["Datasets"]),
        .target(name: "Reports", dependencies: ["Visualization", "Training", "TensorCore"]),
        .target(name: "Training", dependencies: ["Kernels", "Mask2FormerModel", "NN", "Optim", "TensorCore", "Datasets", "Distributed", "Checkpoint",
                                                 "Evaluation",
                                                 .product(name: "Yams", package: "Yams")]),
        .target(name: "_TestSupport", dependencies: ["Kernels", "TensorCore", "Checkpoint", "Mask2FormerModel"]),
        .executableTarget(
            name: "maskpilot",
            dependencies: [
                "CBLAS", "Kernels", "TensorCore", "NN", "Mask2FormerModel", "Training", "Datasets", "Checkpoint", "Distributed", "Evaluation",
                "Visualization", "Reports", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "_TestSupport"]),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "Kernels", "_TestSupport"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "TensorCore", "_TestSupport"]),
        .testTarget(name: "OptimTests", dependencies: ["Optim", "NN", "TensorCore", "_TestSupport"]),
        .testTarget(name: "Mask2FormerModelTests",
                    dependencies: ["Mask2FormerModel", "NN", "TensorCore", "Kernels", "Checkpoint", "_TestSupport"]),
        .testTarget(name: "TrainingTests",
                    dependencies: ["Training", "Datasets", "Evaluation", "Distributed", "Mask2FormerModel", "NN", "Optim", "TensorCore", "Kernels", "_TestSupport"]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "TensorCore", "_TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "TensorCore", "_TestSupport"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Datasets", "Distributed", "TensorCore", "Mask2FormerModel", "_TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "VisualizationTests", dependencies: ["Visualization", "Datasets"]),
        .testTarget(name: "ReportsTests", dependencies: ["Reports", "Visualization", "Datasets"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "TensorCore", "_TestSupport"]),
        .testTarget(name: "SystemLibraryTests", dependencies: ["CBLAS", "CMPI", "CHDF5", "CImageCodecs", "CDNNL"]),
        // Multi-rank tests: an executable run under `mpirun -np 2` by `make test` (never swift test under mpirun).
        .executableTarget(name: "maskpilot-mpi-tests", dependencies: ["CMPI", "Distributed", "TensorCore", "NN", "Optim",
                                                                 "Mask2FormerModel", "Training"], path: "Tests/MPITests"),
    ],
    swiftLanguageModes: [.v6]
)

// Vector code for the CPUs MaskPilot runs on. On x86-64 the Swift code (every non-GEMM kernel: norms, softmax,
// MSDeformAttn, resampling, losses, AdamW …) is compiled for Haswell and later (AVX2, FMA) instead of baseline SSE2;
// MASKPILOT_TARGET_CPU overrides it (`x86-64` for older CPUs, `native` for the build machine's own). The numbers do
// not depend on it: Swift neither reassociates nor fuses floating-point operations on its own, so wider vectors
// change speed, not results (docs/perf.md measures both).
#if arch(x86_64)
let targetCPU = ProcessInfo.processInfo.environment["MASKPILOT_TARGET_CPU"] ?? "haswell"
for target in package.targets where target.type != .system && !targetCPU.isEmpty {
    target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(["-target-cpu", targetCPU])]
}
#endif
