// ResNet backbone (basic and bottleneck blocks, frozen BN, stride in the 3×3) returning res2–res5.
// Corresponds to detectron2 modeling/backbone/resnet.py (BasicStem, BasicBlock, BottleneckBlock, ResNet) — docs/model.md#backbone.
import NN
import TensorCore

/// The backbone (`model.backbone.*`): a ResNet (`name: resnet`, the keys below) or a Swin Transformer
/// (`name: swin`, the keys under `swin`). The ResNet keys stay at this level so that existing configs and
/// checkpoints read unchanged; with `name: swin` they are unused.
public struct BackboneConfig: Sendable, Equatable, Codable {
    public enum Name: String, Sendable, Codable { case resnet, swin }
    public enum Block: String, Sendable, Codable { case basic, bottleneck }
    public var name: Name = .resnet
    public var block: Block
    /// Blocks per stage res2…res5.
    public var depths: [Int]
    /// Output channels of res2…res5 (bottleneck: 4× the inner width).
    public var widths: [Int]
    public var stemChannels: Int
    /// detectron2 `STRIDE_IN_1X1`: put a bottleneck's stride in the 1×1 reduction conv (Caffe) instead of the 3×3.
    public var strideInReduction: Bool = false
    /// `model.backbone.swin.*` (Mask2Former's `MODEL.SWIN.*`), used when `name` is `swin`.
    public var swin = SwinConfig()
    /// detectron2's `MODEL.BACKBONE.FREEZE_AT` (Swin's `frozen_stages`): training leaves the first `freezeAt` stages'
    /// parameters as they are — 1 the stem (Swin's patch embedding), 2 also res2 (Swin's first stage), … 5 the whole
    /// backbone; 0 (Mask2Former's value) trains everything.
    public var freezeAt = 0

    public init(block: Block, depths: [Int], widths: [Int], stemChannels: Int, strideInReduction: Bool = false) {
        self.block = block; self.depths = depths; self.widths = widths
        self.stemChannels = stemChannels; self.strideInReduction = strideInReduction
    }

    /// A Swin backbone (the ResNet keys keep R50's values, unused).
    public static func swin(_ swin: SwinConfig) -> BackboneConfig {
        var c = BackboneConfig.standard(depth: 50)
        c.name = .swin
        c.swin = swin
        return c
    }

    /// Channels of res2…res5, whichever backbone.
    public var outputChannels: [Int] { name == .swin ? swin.outputChannels : widths }

    /// The parameter-name prefixes `freezeAt` freezes: the stem, then res2…res5 (`backbone.stem.`, `backbone.res2.`, …;
    /// Swin: `backbone.patch_embed.`, `backbone.layers.0.`, …, each stage with its patch merging). Swin's output norms
    /// (`backbone.normK`) stay trainable, as in its reference.
    public var frozenParameterPrefixes: [String] {
        let stages = name == .swin ? ["backbone.patch_embed."] + (0..<4).map { "backbone.layers.\($0)." }
                                   : ["backbone.stem."] + (2...5).map { "backbone.res\($0)." }
        return Array(stages.prefix(max(0, min(freezeAt, stages.count))))
    }

    /// Standard depths 18, 34, 50, 101 (torchvision-style, stem 64).
    public static func standard(depth: Int) -> BackboneConfig {
        switch depth {
        case 18: return BackboneConfig(block: .basic, depths: [2, 2, 2, 2], widths: [64, 128, 256, 512], stemChannels: 64)
        case 34: return BackboneConfig(block: .basic, depths: [3, 4, 6, 3], widths: [64, 128, 256, 512], stemChannels: 64)
        case 50: return BackboneConfig(block: .bottleneck, depths: [3, 4, 6, 3], widths: [256, 512, 1024, 2048], stemChannels: 64)
        case 101: return BackboneConfig(block: .bottleneck, depths: [3, 4, 23, 3], widths: [256, 512, 1024, 2048], stemChannels: 64)
        default: preconditionFailure("ResNet depth \(depth) is not one of 18, 34, 50, 101")
        }
    }
}

/// 3×3 or 1×1 conv without bias followed by a frozen BN (detectron2 Conv2d with norm "FrozenBN").
private func convBN(_ cin: Int, _ cout: Int, kernel: Int, stride: Int, relu: Bool, rng: inout RNG) -> Conv2d {
    let conv = Conv2d(cin, cout, kernel: kernel, stride: stride, padding: kernel / 2, bias: false,
                      norm: FrozenBatchNorm2d(cout), activation: relu ? { $0.relu() } : nil, rng: &rng)
    Init.c2MSRAFill(weight: conv.weight, bias: nil, rng: &rng)
    return conv
}

/// A residual block; `BasicBlock` and `BottleneckBlock` override `callAsFunction`.
public class ResNetBlock: Module {
    /// `[B, H, W, Cin]` → `[B, H/stride, W/stride, Cout]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { preconditionFailure("ResNetBlock is abstract") }
}

/// Two 3×3 convs (keys `conv1`, `conv2`, optional `shortcut`), each with `norm`.
public final class BasicBlock: ResNetBlock {
    public let conv1: Conv2d
    public let conv2: Conv2d
    public let shortcut: Conv2d?

    public init(_ cin: Int, _ cout: Int, stride: Int, rng: inout RNG) {
        shortcut = cin != cout || stride != 1 ? convBN(cin, cout, kernel: 1, stride: stride, relu: false, rng: &rng) : nil
        conv1 = convBN(cin, cout, kernel: 3, stride: stride, relu: true, rng: &rng)
        conv2 = convBN(cout, cout, kernel: 3, stride: 1, relu: false, rng: &rng)
        super.init()
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let y = conv2(conv1(x))
        return (y + (shortcut.map { $0(x) } ?? x)).relu()
    }
}

/// 1×1 → 3×3 (stride here unless `strideInReduction`) → 1×1 (keys `conv1`…`conv3`, optional `shortcut`).
public final class BottleneckBlock: ResNetBlock {
    public let conv1: Conv2d
    public let conv2: Conv2d
    public let conv3: Conv2d
    public let shortcut: Conv2d?

    public init(_ cin: Int, _ cout: Int, bottleneck: Int, stride: Int, strideInReduction: Bool, rng: inout RNG) {
        shortcut = cin != cout || stride != 1 ? convBN(cin, cout, kernel: 1, stride: stride, relu: false, rng: &rng) : nil
        conv1 = convBN(cin, bottleneck, kernel: 1, stride: strideInReduction ? stride : 1, relu: true, rng: &rng)
        conv2 = convBN(bottleneck, bottleneck, kernel: 3, stride: strideInReduction ? 1 : stride, relu: true, rng: &rng)
        conv3 = convBN(bottleneck, cout, kernel: 1, stride: 1, relu: false, rng: &rng)
        super.init()
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let y = conv3(conv2(conv1(x)))
        return (y + (shortcut.map { $0(x) } ?? x)).relu()
    }
}

/// 7×7 stride-2 conv (key `conv1`, with `norm`), ReLU, 3×3 stride-2 max-pool: stride 4.
public final class BasicStem: Module {
    public let conv1: Conv2d

    public init(_ cin: Int, _ cout: Int, rng: inout RNG) {
        conv1 = Conv2d(cin, cout, kernel: 7, stride: 2, padding: 3, bias: false, norm: FrozenBatchNorm2d(cout),
                       activation: { $0.relu() }, rng: &rng)
        Init.c2MSRAFill(weight: conv1.weight, bias: nil, rng: &rng)
        super.init()
    }

    /// `[B, H, W, 3]` → `[B, H/4, W/4, C]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.maxPool2d(conv1(x), kernel: 3, stride: 2, padding: 1)
    }
}

/// The multi-scale features a backbone returns.
public struct BackboneFeatures {
    /// Strides 4, 8, 16, 32, each `[B, H/s, W/s, C_s]`.
    public var res2, res3, res4, res5: Tensor

    public init(res2: Tensor, res3: Tensor, res4: Tensor, res5: Tensor) {
        self.res2 = res2; self.res3 = res3; self.res4 = res4; self.res5 = res5
    }
}

/// ResNet with keys `stem.*`, `res2.<i>.*` … `res5.<i>.*` (detectron2 names, under `backbone.`).
public final class ResNet: Module {
    public let config: BackboneConfig
    public let stem: BasicStem
    public let res2: [ResNetBlock]
    public let res3: [ResNetBlock]
    public let res4: [ResNetBlock]
    public let res5: [ResNetBlock]

    public init(_ config: BackboneConfig, inChannels: Int = 3, rng: inout RNG) {
        precondition(config.depths.count == 4 && config.widths.count == 4, "ResNet needs 4 stages, got \(config)")
        self.config = config
        stem = BasicStem(inChannels, config.stemChannels, rng: &rng)
        var stages: [[ResNetBlock]] = []
        var cin = config.stemChannels
        for s in 0..<4 {
            var blocks: [ResNetBlock] = []
            let cout = config.widths[s]
            for i in 0..<config.depths[s] {
                let stride = i == 0 && s > 0 ? 2 : 1
                switch config.block {
                case .basic: blocks.append(BasicBlock(cin, cout, stride: stride, rng: &rng))
                case .bottleneck:
                    blocks.append(BottleneckBlock(cin, cout, bottleneck: cout / 4, stride: stride,
                                                  strideInReduction: config.strideInReduction, rng: &rng))
                }
                cin = cout
            }
            stages.append(blocks)
        }
        res2 = stages[0]; res3 = stages[1]; res4 = stages[2]; res5 = stages[3]
        super.init()
    }

    /// `x`: normalized images `[B, H, W, 3]` (H, W multiples of 32) → res2…res5.
    public func callAsFunction(_ x: Tensor) -> BackboneFeatures {
        func run(_ blocks: [ResNetBlock], _ t: Tensor) -> Tensor { blocks.reduce(t) { $1($0) } }
        let r2 = run(res2, stem(x))
        let r3 = run(res3, r2)
        let r4 = run(res4, r3)
        let r5 = run(res5, r4)
        return BackboneFeatures(res2: r2, res3: r3, res4: r4, res5: r5)
    }
}
