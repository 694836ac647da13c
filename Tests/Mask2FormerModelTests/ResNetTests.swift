// Tests of the ResNet backbone: detectron2 names, the R50 trainable parameter count, strides, gradients.
// Reference: detectron2 resnet.py (keys backbone.stem.conv1.*, backbone.res2.0.conv1.norm.*), docs/model.md#backbone and #parameter-count.
import Mask2FormerModel
import NN
import Testing
import TensorCore
import _TestSupport

@Suite struct ResNetTests {
    @Test func r50NamesAndTrainableCount() {
        var rng = RNG(seed: 1)
        let r50 = ResNet(.standard(depth: 50), rng: &rng)
        let params = r50.namedParameters()
        // docs/model.md#parameter-count: R50 convolutions hold 23,454,912 trainable values; FrozenBN affines are buffers.
        #expect(params.map { $0.1.count }.reduce(0, +) == 23_454_912)
        let names = params.map(\.0)
        #expect(names.first == "stem.conv1.weight")
        #expect(names.contains("res2.0.shortcut.weight") && !names.contains("res2.1.shortcut.weight"))
        #expect(names.contains("res5.2.conv3.weight") && names.count == 1 + 16 * 3 + 4)
        let buffers = r50.namedBuffers().map(\.0)
        #expect(buffers.contains("res2.0.conv1.norm.running_mean") && buffers.contains("stem.conv1.norm.weight"))
        #expect(r50.namedParameters().first { $0.0 == "res3.0.conv2.weight" }!.1.shape == [128, 3, 3, 128])
        // Torchvision-style: the stride sits in the 3×3 (conv2), the 1×1 keeps stride 1.
        let block = r50.res3[0] as! BottleneckBlock
        #expect(block.conv1.stride == 1 && block.conv2.stride == 2 && block.shortcut!.stride == 2)
    }

    @Test func r18StridesAndChannels() {
        var rng = RNG(seed: 2)
        let r18 = ResNet(.standard(depth: 18), rng: &rng)
        #expect(r18.namedParameters().map { $0.1.count }.reduce(0, +) == 11_166_912)  // torchvision resnet18 − fc − BN
        let x = testTensor([1, 64, 96, 3], seed: 3, requiresGrad: false)
        let f = withNoGrad { r18(x) }
        #expect(f.res2.shape == [1, 16, 24, 64] && f.res3.shape == [1, 8, 12, 128])
        #expect(f.res4.shape == [1, 4, 6, 256] && f.res5.shape == [1, 2, 3, 512])
    }

    @Test func tinyBackboneGradients() {
        for block in [BackboneConfig.Block.basic, .bottleneck] {
            var rng = RNG(seed: 4)
            let cfg = BackboneConfig(block: block, depths: [1, 1, 1, 1], widths: [8, 8, 16, 16], stemChannels: 4)
            let net = ResNet(cfg, rng: &rng)
            let x = testTensor([1, 32, 32, 3], seed: 5)
            let w = net.namedParameters().first { $0.0 == "res3.0.conv1.weight" }!.1
            let rep = gradCheck([x, w], rtol: 2e-2, atol: 5e-3) { t in
                let f = net(t[0])
                return Tensor.concat([f.res2.reshaped([-1]), f.res5.reshaped([-1])], axis: 0)
            }
            #expect(rep.passed, "\(block): \(rep)")
        }
    }
}
