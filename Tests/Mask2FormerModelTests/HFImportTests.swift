// Tests of the HF-transformers → detectron2 name mapping, q/k/v packing and unmapped-key reporting.
// Reference: HF Mask2Former naming (model.pixel_level_module…, model.transformer_module…) vs Mask2Former's state_dict.
import Checkpoint
import Foundation
import Mask2FormerModel
import Testing
import TensorCore

@Suite struct HFImportTests {
    @Test func namesPackingAndUnmapped() throws {
        func t(_ v: Float, _ shape: [Int]) -> Tensor { Tensor.full(shape, v) }
        let src: [String: Tensor] = [
            "model.pixel_level_module.encoder.embedder.embedder.convolution.weight": t(1, [4, 3, 7, 7]),
            "model.pixel_level_module.encoder.embedder.embedder.normalization.running_var": t(1, [4]),
            "model.pixel_level_module.encoder.encoder.stages.1.layers.0.layer.1.normalization.bias": t(1, [8]),
            "model.pixel_level_module.encoder.encoder.stages.2.layers.0.shortcut.convolution.weight": t(1, [8, 4, 1, 1]),
            "model.pixel_level_module.decoder.input_projections.2.1.weight": t(1, [8]),
            "model.pixel_level_module.decoder.adapter_1.1.bias": t(1, [8]),
            "model.pixel_level_module.decoder.layer_1.0.weight": t(1, [8, 8, 3, 3]),
            "model.pixel_level_module.decoder.encoder.layers.1.self_attn_layer_norm.weight": t(1, [8]),
            "model.pixel_level_module.decoder.encoder.layers.0.self_attn.sampling_offsets.bias": t(1, [16]),
            "model.pixel_level_module.decoder.level_embed": t(1, [3, 8]),
            "model.pixel_level_module.decoder.mask_projection.weight": t(1, [8, 8, 1, 1]),
            "model.transformer_module.decoder.layers.2.self_attn.q_proj.weight": t(1, [2, 2]),
            "model.transformer_module.decoder.layers.2.self_attn.k_proj.weight": t(2, [2, 2]),
            "model.transformer_module.decoder.layers.2.self_attn.v_proj.weight": t(3, [2, 2]),
            "model.transformer_module.decoder.layers.2.self_attn.q_proj.bias": t(4, [2]),
            "model.transformer_module.decoder.layers.2.self_attn.k_proj.bias": t(5, [2]),
            "model.transformer_module.decoder.layers.2.self_attn.v_proj.bias": t(6, [2]),
            "model.transformer_module.decoder.layers.0.cross_attn_layer_norm.bias": t(1, [2]),
            "model.transformer_module.decoder.mask_predictor.mask_embedder.2.0.weight": t(1, [2, 2]),
            "model.transformer_module.queries_features.weight": t(1, [3, 2]),
            "class_predictor.bias": t(1, [6]),
            "model.something_new.weight": t(1, [1]),
        ]
        let r = try importHuggingFaceMask2Former(src)
        let expected = [
            "backbone.stem.conv1.weight", "backbone.stem.conv1.norm.running_var", "backbone.res3.0.conv2.norm.bias",
            "backbone.res4.0.shortcut.weight", "sem_seg_head.pixel_decoder.input_proj.2.1.weight",
            "sem_seg_head.pixel_decoder.adapter_1.norm.bias", "sem_seg_head.pixel_decoder.layer_1.weight",
            "sem_seg_head.pixel_decoder.transformer.encoder.layers.1.norm1.weight",
            "sem_seg_head.pixel_decoder.transformer.encoder.layers.0.self_attn.sampling_offsets.bias",
            "sem_seg_head.pixel_decoder.transformer.level_embed", "sem_seg_head.pixel_decoder.mask_features.weight",
            "sem_seg_head.predictor.transformer_self_attention_layers.2.self_attn.in_proj_weight",
            "sem_seg_head.predictor.transformer_self_attention_layers.2.self_attn.in_proj_bias",
            "sem_seg_head.predictor.transformer_cross_attention_layers.0.norm.bias",
            "sem_seg_head.predictor.mask_embed.layers.2.weight", "sem_seg_head.predictor.query_feat.weight",
            "sem_seg_head.predictor.class_embed.bias",
        ]
        #expect(Set(r.tensors.keys) == Set(expected))
        #expect(r.unmapped == ["model.something_new.weight"])
        let w = r.tensors["sem_seg_head.predictor.transformer_self_attention_layers.2.self_attn.in_proj_weight"]!
        #expect(w.shape == [6, 2] && w.values == [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3])
        #expect(r.tensors["sem_seg_head.predictor.transformer_self_attention_layers.2.self_attn.in_proj_bias"]!.values == [4, 4, 5, 5, 6, 6])
    }

    /// A q/k/v triple that cannot be stacked (another width, or a scalar) is an error naming its keys and shapes,
    /// not a trap in `Tensor.concat`.
    @Test(arguments: [[256, 128], []]) func unstackableTripleIsAnErrorNamingIt(kShape: [Int]) {
        let prefix = "model.transformer_module.decoder.layers.0.self_attn."
        let source = [prefix + "q_proj.weight": Tensor.zeros([256, 256]), prefix + "k_proj.weight": Tensor.zeros(kShape),
                      prefix + "v_proj.weight": Tensor.zeros([256, 256])]
        #expect {
            _ = try importHuggingFaceMask2Former(source)
        } throws: { error in
            let text = "\(error)"
            return text.contains(prefix + "k_proj.weight \(kShape)") && text.contains("in_proj_weight")
        }
    }

    @Test func incompleteTripleIsReported() throws {
        let r = try importHuggingFaceMask2Former(["model.transformer_module.decoder.layers.0.self_attn.q_proj.bias": Tensor.zeros([2])])
        #expect(r.tensors.isEmpty && r.unmapped.count == 1 && r.unmapped[0].contains("q_proj.bias"))
    }

    /// HF Swin backbone keys in transformers 5 naming (`swin.` prefix, q/k/v/o_proj, mlp.fc1/fc2) and in 4.x naming
    /// (attention.self.query…, intermediate/output.dense, the saved relative_position_index) map onto the same keys.
    @Test func swinKeysOfBothTransformersGenerations() throws {
        func t(_ v: Float, _ shape: [Int]) -> Tensor { Tensor.full(shape, v) }
        let enc = "model.pixel_level_module.encoder."
        let v5: [String: Tensor] = [
            enc + "swin.embeddings.patch_embeddings.projection.weight": t(1, [8, 3, 4, 4]),
            enc + "swin.embeddings.norm.bias": t(1, [8]),
            enc + "swin.encoder.layers.1.blocks.0.layernorm_before.weight": t(1, [16]),
            enc + "swin.encoder.layers.1.blocks.0.attention.relative_position_bias.relative_position_bias_table": t(1, [25, 2]),
            enc + "swin.encoder.layers.1.blocks.0.attention.q_proj.weight": t(1, [16, 16]),
            enc + "swin.encoder.layers.1.blocks.0.attention.k_proj.weight": t(2, [16, 16]),
            enc + "swin.encoder.layers.1.blocks.0.attention.v_proj.weight": t(3, [16, 16]),
            enc + "swin.encoder.layers.1.blocks.0.attention.o_proj.bias": t(1, [16]),
            enc + "swin.encoder.layers.1.blocks.0.layernorm_after.bias": t(1, [16]),
            enc + "swin.encoder.layers.1.blocks.0.mlp.fc1.weight": t(1, [32, 16]),
            enc + "swin.encoder.layers.1.blocks.0.mlp.fc2.bias": t(1, [16]),
            enc + "swin.encoder.layers.0.downsample.reduction.weight": t(1, [16, 32]),
            enc + "swin.encoder.layers.0.downsample.norm.weight": t(1, [32]),
            enc + "hidden_states_norms.stage3.weight": t(1, [32]),
            enc + "swin.layernorm.weight": t(1, [64]),
        ]
        let v4: [String: Tensor] = [
            enc + "embeddings.patch_embeddings.projection.weight": t(1, [8, 3, 4, 4]),
            enc + "embeddings.norm.bias": t(1, [8]),
            enc + "encoder.layers.1.blocks.0.layernorm_before.weight": t(1, [16]),
            enc + "encoder.layers.1.blocks.0.attention.self.relative_position_bias_table": t(1, [25, 2]),
            enc + "encoder.layers.1.blocks.0.attention.self.relative_position_index": t(1, [81]),
            enc + "encoder.layers.1.blocks.0.attention.self.query.weight": t(1, [16, 16]),
            enc + "encoder.layers.1.blocks.0.attention.self.key.weight": t(2, [16, 16]),
            enc + "encoder.layers.1.blocks.0.attention.self.value.weight": t(3, [16, 16]),
            enc + "encoder.layers.1.blocks.0.attention.output.dense.bias": t(1, [16]),
            enc + "encoder.layers.1.blocks.0.layernorm_after.bias": t(1, [16]),
            enc + "encoder.layers.1.blocks.0.intermediate.dense.weight": t(1, [32, 16]),
            enc + "encoder.layers.1.blocks.0.output.dense.bias": t(1, [16]),
            enc + "encoder.layers.0.downsample.reduction.weight": t(1, [16, 32]),
            enc + "encoder.layers.0.downsample.norm.weight": t(1, [32]),
            enc + "hidden_states_norms.stage3.weight": t(1, [32]),
        ]
        let expected: Set<String> = [
            "backbone.patch_embed.proj.weight", "backbone.patch_embed.norm.bias", "backbone.layers.1.blocks.0.norm1.weight",
            "backbone.layers.1.blocks.0.attn.relative_position_bias_table", "backbone.layers.1.blocks.0.attn.qkv.weight",
            "backbone.layers.1.blocks.0.attn.proj.bias", "backbone.layers.1.blocks.0.norm2.bias",
            "backbone.layers.1.blocks.0.mlp.fc1.weight", "backbone.layers.1.blocks.0.mlp.fc2.bias",
            "backbone.layers.0.downsample.reduction.weight", "backbone.layers.0.downsample.norm.weight", "backbone.norm2.weight",
        ]
        for (generation, source) in [("transformers 5", v5), ("transformers 4", v4)] {
            let r = try importHuggingFaceMask2Former(source)
            #expect(Set(r.tensors.keys) == expected, "\(generation): \(Set(r.tensors.keys).symmetricDifference(expected))")
            #expect(r.unmapped.isEmpty, "\(generation): \(r.unmapped)")
            #expect(r.ignored.count == 1, "\(generation): \(r.ignored)")
            let qkv = r.tensors["backbone.layers.1.blocks.0.attn.qkv.weight"]!
            #expect(qkv.shape == [48, 16] && qkv.values[0] == 1 && qkv.values[16 * 16] == 2 && qkv.values[32 * 16] == 3)
        }
    }
    /// The name table read both ways on a file HF wrote (Tests/Fixtures/hf/swin): import then export gives back every
    /// key with the same shape and values, the stacked q/k/v split into HF's three; the ignored keys are re-made.
    @Test func exportInvertsImportOnHFsOwnFile() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/hf/swin/model.safetensors").path
        let hf = try readSafeTensors(path: file).tensors
        let imported = try importHuggingFaceMask2Former(Dictionary(uniqueKeysWithValues: hf))
        #expect(imported.unmapped.isEmpty)
        let ours = imported.tensors.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        let back = try exportHuggingFaceMask2Former(ours, numClasses: 5, noObjectWeight: 0.1, swinFinalNorm: 128)
        #expect(back.dropped.isEmpty)
        let original = Dictionary(uniqueKeysWithValues: hf)
        #expect(Set(back.tensors.map(\.0)) == Set(original.keys))
        for (key, t) in back.tensors {
            let o = try #require(original[key])
            #expect(t.shape == o.shape, "\(key)")
            if !key.contains("swin.layernorm") && key != "criterion.empty_weight" { #expect(t.values == o.values, "\(key)") }
        }
        #expect(back.tensors.first { $0.0 == "criterion.empty_weight" }!.1.values == [1, 1, 1, 1, 1, 0.1])
        #expect(hfNames(ofOurs: "backbone.res3.0.conv2.norm.running_var")
                == ["model.pixel_level_module.encoder.encoder.stages.1.layers.0.layer.1.normalization.running_var"])
        #expect(hfNames(ofOurs: "sem_seg_head.predictor.transformer_self_attention_layers.2.self_attn.in_proj_bias")
                == ["q_proj", "k_proj", "v_proj"].map { "model.transformer_module.decoder.layers.2.self_attn.\($0).bias" })
        #expect(hfNames(ofOurs: "sem_seg_head.predictor.label_enc.weight") == nil)
        // An index too large for any model (from a hand-made file) maps nothing instead of overflowing.
        let huge = "model.pixel_level_module.encoder.encoder.stages.0.layers.0.layer.9223372036854775807.convolution.weight"
        #expect(try importHuggingFaceMask2Former([huge: Tensor.zeros([1])]).unmapped == [huge])
        #expect(hfNames(ofOurs: "backbone.res2.9223372036854775807.conv1.weight") == nil)
        #expect(throws: HFImportError.self) { _ = try exportHuggingFaceMask2Former([("backbone.mystery.weight", Tensor.zeros([1]))],
                                                                                 numClasses: 1, noObjectWeight: 0.1, swinFinalNorm: nil) }
    }
}
