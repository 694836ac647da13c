// Tests of Module reflection: ordered dotted names, key overrides, buffers, arrays, optionals, state-dict loading.
// Reference semantics: torch.nn.Module named_parameters / named_buffers / state_dict / load_state_dict(strict=True).
import Testing
import TensorCore
import NN
import _TestSupport

/// A norm-like leaf: a plain parameter, a key-overridden parameter and a key-overridden buffer.
private final class Affine: Module {
    let weight: Tensor
    @Param(key: "bias") var shift: Tensor
    @Buffer(key: "running_var") var variance: Tensor

    init(_ n: Int) {
        weight = Tensor.ones([n], requiresGrad: true)
        super.init()
        shift = Tensor.zeros([n], requiresGrad: true)
        variance = Tensor.ones([n])
    }
}

private final class Block: Module {
    let conv1: Linear
    @Child(key: "norm") var normLayer: Affine
    @Buffer var running_mean: Tensor
    var unusedNumber = 3
    @Ignored var cache: Tensor = Tensor.zeros([2])

    init(_ n: Int, rng: inout RNG) {
        conv1 = Linear(n, n, rng: &rng)
        running_mean = Tensor.zeros([n])
        super.init()
        normLayer = Affine(n)
    }
}

private class BaseNet: Module {
    let stem: Linear
    init(rng: inout RNG) {
        stem = Linear(3, 4, rng: &rng)
        super.init()
    }
}

private final class Net: BaseNet {
    let scale: Tensor
    let blocks: [Block]
    let head: Linear? = nil
    let optionalBias: Tensor? = nil
    @Child(key: "predictor") var mlp: MLP
    @Param(key: "level_embed") var levels: [Tensor]
    lazy var lazyTensor: Tensor = Tensor.zeros([1])

    init(seed: UInt64) {
        var rng = RNG(seed: seed)
        scale = Tensor.ones([1], requiresGrad: true)
        blocks = [Block(4, rng: &rng), Block(4, rng: &rng)]
        let mlp = MLP(inputDim: 4, hiddenDim: 5, outputDim: 2, layerCount: 2, rng: &rng)
        super.init(rng: &rng)
        self.mlp = mlp
        levels = [Tensor.zeros([4], requiresGrad: true), Tensor.zeros([4], requiresGrad: true)]
    }
}

/// The same Linear reachable under two names.
private final class Shared: Module {
    let a: Linear
    let b: Linear
    override init() {
        let l = Linear(2, 2, seed: 1)
        a = l; b = l
        super.init()
    }
}

private final class ConvLike: Module {
    @Param(key: "weight", layout: .convOHWI) var weight: Tensor
    let bias: Tensor
    override init() {
        bias = testTensor([2], seed: 5)
        super.init()
        weight = testTensor([2, 3, 3, 4], seed: 6)
    }
}

@Suite struct ModuleTests {
    @Test func parameterNamesAndOrder() {
        let net = Net(seed: 1)
        let block = ["conv1.weight", "conv1.bias", "norm.weight", "norm.bias"]
        let expected = ["scale", "level_embed.0", "level_embed.1", "stem.weight", "stem.bias"]
            + block.map { "blocks.0." + $0 } + block.map { "blocks.1." + $0 }
            + ["predictor.layers.0.weight", "predictor.layers.0.bias", "predictor.layers.1.weight", "predictor.layers.1.bias"]
        #expect(net.namedParameters().map(\.0) == expected)
        #expect(net.parameters().count == expected.count)
        #expect(net.parameterCount == 1 + 8 + 16 + 2 * (20 + 8) + (20 + 5) + (10 + 2))
        #expect(net.namedBuffers().map(\.0) == ["blocks.0.running_mean", "blocks.0.norm.running_var",
                                               "blocks.1.running_mean", "blocks.1.norm.running_var"])
        #expect(net.namedModules().map(\.0) == ["", "stem", "blocks.0", "blocks.0.conv1", "blocks.0.norm",
                                               "blocks.1", "blocks.1.conv1", "blocks.1.norm",
                                               "predictor", "predictor.layers.0", "predictor.layers.1"])
        // The names point at the right tensors.
        let byName = Dictionary(uniqueKeysWithValues: net.namedParameters())
        #expect(byName["blocks.1.norm.bias"] === net.blocks[1].normLayer.shift)
        #expect(byName["level_embed.1"] === net.levels[1])
        // Reflection is cached: the same names and tensors again.
        let sameTensors = zip(net.namedParameters().map(\.1), net.parameters()).allSatisfy { $0 === $1 }
        #expect(sameTensors)
    }

    @Test func stateDictOrder() {
        let net = Net(seed: 1)
        let block = ["running_mean", "conv1.weight", "conv1.bias", "norm.weight", "norm.bias", "norm.running_var"]
        let expected = ["scale", "level_embed.0", "level_embed.1", "stem.weight", "stem.bias"]
            + block.map { "blocks.0." + $0 } + block.map { "blocks.1." + $0 }
            + ["predictor.layers.0.weight", "predictor.layers.0.bias", "predictor.layers.1.weight", "predictor.layers.1.bias"]
        #expect(net.stateDict().map(\.0) == expected)
        #expect(net.stateDictKeys() == expected)
    }

    @Test func sharedModulesListedOnceAsParameters() {
        let m = Shared()
        #expect(m.namedParameters().map(\.0) == ["a.weight", "a.bias"])
        #expect(m.namedModules().map(\.0) == ["", "a"])
        #expect(m.stateDict().map(\.0) == ["a.weight", "a.bias", "b.weight", "b.bias"])
    }

    @Test func trainEvalAndFreeze() {
        let net = Net(seed: 1)
        #expect(net.isTraining && net.blocks[1].normLayer.isTraining)
        net.eval()
        #expect(!net.isTraining && !net.blocks[1].normLayer.isTraining && !net.mlp.layers[0].isTraining)
        net.train()
        #expect(net.mlp.layers[1].isTraining)
        net.blocks[0].freeze()
        #expect(net.namedParameters().filter { !$0.1.requiresGrad }.map(\.0)
                == ["blocks.0.conv1.weight", "blocks.0.conv1.bias", "blocks.0.norm.weight", "blocks.0.norm.bias"])
    }

    @Test func parameterNamesByModuleType() {
        let net = Net(seed: 1)
        #expect(net.parameterNames(inModulesWhere: { $0 is Affine })
                == ["blocks.0.norm.weight", "blocks.0.norm.bias", "blocks.1.norm.weight", "blocks.1.norm.bias"])
    }

    @Test func loadReportsEveryProblemAtOnce() {
        let source = Net(seed: 2)
        let target = Net(seed: 3)
        var dict = Dictionary(uniqueKeysWithValues: source.stateDict().map { ($0.0, $0.1.copy()) })
        dict["blocks.1.conv1.bias"] = nil
        dict["stem.weight"] = nil
        dict["extra.weight"] = Tensor.zeros([1])
        dict["blocks.0.norm.running_var"] = Tensor.zeros([5])
        dict["scale"] = Tensor.zeros([1, 1])
        let before = target.stem.bias!.values
        do {
            try target.load(dict)
            Issue.record("load should have thrown")
        } catch let report as StateDictReport {
            #expect(report.missing == ["stem.weight", "blocks.1.conv1.bias"])
            #expect(report.unused == ["extra.weight"])
            #expect(report.misshaped == [
                ShapeMismatch(key: "scale", expected: [1], found: [1, 1]),
                ShapeMismatch(key: "blocks.0.norm.running_var", expected: [4], found: [5]),
            ])
            let text = report.description
            #expect(text.contains("missing:    stem.weight") && text.contains("unused:     extra.weight")
                    && text.contains("mis-shaped: scale: expected [1], found [1, 1]"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
        // Nothing was copied.
        #expect(target.stem.bias!.values == before)
    }

    @Test func loadCopiesValues() throws {
        let source = Net(seed: 2)
        let target = Net(seed: 3)
        source.blocks[1].running_mean.data[2] = 7
        #expect(target.blocks[0].conv1.weight.values != source.blocks[0].conv1.weight.values)
        let report = try target.load(source.stateDict())
        #expect(report.isEmpty)
        for ((n1, t1), (n2, t2)) in zip(source.stateDict(), target.stateDict()) {
            #expect(n1 == n2)
            #expect(t1.values == t2.values, "\(n1)")
            #expect(t1 !== t2 && t1.storage !== t2.storage, "\(n1) must be copied, not shared")
        }
        #expect(target.blocks[1].running_mean.data[2] == 7)
    }

    @Test func nonStrictLoadReturnsMissingAndUnused() throws {
        let source = Net(seed: 2)
        let target = Net(seed: 3)
        var dict = Dictionary(uniqueKeysWithValues: source.stateDict())
        dict["scale"] = nil
        dict["other"] = Tensor.zeros([3])
        let report = try target.load(dict, strict: false)
        #expect(report.missing == ["scale"] && report.unused == ["other"])
        #expect(target.stem.weight.values == source.stem.weight.values)
        // Mis-shaped keys fail even when not strict.
        dict["stem.bias"] = Tensor.zeros([3])
        #expect(throws: StateDictReport.self) { try target.load(dict, strict: false) }
    }

    @Test func pytorchLayoutRoundTrip() throws {
        let m = ConvLike()
        let exported = m.stateDict(layout: .pytorch)
        #expect(exported.map(\.0) == ["weight", "bias"])
        let w = exported[0].1
        #expect(w.shape == [2, 4, 3, 3])
        // PyTorch [o, i, y, x] equals ours [o, y, x, i].
        #expect(w[1, 3, 0, 2] == m.weight[1, 0, 2, 3])
        #expect(w[0, 1, 2, 1] == m.weight[0, 2, 1, 1])
        #expect(m.stateDict()[0].1.shape == [2, 3, 3, 4])

        let other = ConvLike()
        other.weight.zero()
        try other.load(Dictionary(uniqueKeysWithValues: exported), layout: .pytorch)
        #expect(other.weight.values == m.weight.values)
        // Our-layout tensors against a PyTorch-layout load are mis-shaped.
        #expect(throws: StateDictReport.self) { try other.load(m.stateDict(), layout: .pytorch) }
    }
}
