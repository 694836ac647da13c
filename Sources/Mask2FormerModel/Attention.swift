// Multi-head attention with PyTorch's packed in-projection, and the decoder's post-norm sub-layers.
// Corresponds to torch.nn.MultiheadAttention and Mask2Former's SelfAttentionLayer / CrossAttentionLayer / FFNLayer.
import NN
import TensorCore

/// `nn.MultiheadAttention(C, heads)` with keys `in_proj_weight` `[3C, C]`, `in_proj_bias` `[3C]`,
/// `out_proj.weight`, `out_proj.bias`. Init as Mask2Former: Xavier-uniform on the packed in-projection
/// and the out-projection, zero biases.
public final class MultiheadAttention: Module {
    @Param(key: "in_proj_weight") public var inProjWeight: Tensor
    @Param(key: "in_proj_bias") public var inProjBias: Tensor
    @Child(key: "out_proj") public var outProj: Linear
    public let heads: Int

    public init(_ dim: Int, heads: Int, rng: inout RNG) {
        self.heads = heads
        let out = Linear(dim, dim, rng: &rng)
        super.init()
        inProjWeight = Tensor.zeros([3 * dim, dim], requiresGrad: true)
        inProjBias = Tensor.zeros([3 * dim], requiresGrad: true)
        Init.xavierUniform(inProjWeight, rng: &rng)
        Init.xavierUniform(out.weight, rng: &rng)
        out.bias?.zero()
        outProj = out
    }

    /// `query` `[B, Tq, C]`, `key`/`value` `[B, Tk, C]`, `mask` `[B(·heads), Tq, Tk]` (true = blocked;
    /// a fully blocked row attends everywhere) → `[B, Tq, C]`.
    public func callAsFunction(query: Tensor, key: Tensor, value: Tensor, mask: [Bool]? = nil) -> Tensor {
        let c = inProjWeight.shape[1]
        func project(_ x: Tensor, _ part: Int) -> Tensor {
            Tensor.linear(x, weight: inProjWeight.slice(axis: 0, (part * c)..<((part + 1) * c)),
                          bias: inProjBias.slice(axis: 0, (part * c)..<((part + 1) * c)))
        }
        let o = Tensor.attention(q: project(query, 0), k: project(key, 1), v: project(value, 2), heads: heads, mask: mask)
        return outProj(o)
    }
}

/// Post-norm self-attention: `x ← LN(x + SelfAttn(q = k = x + pos, v = x))`. Keys `self_attn.*`, `norm.*`.
public final class SelfAttentionLayer: Module {
    @Child(key: "self_attn") public var attention: MultiheadAttention
    public let norm: LayerNorm

    public init(_ dim: Int, heads: Int, rng: inout RNG) {
        let a = MultiheadAttention(dim, heads: heads, rng: &rng)
        norm = LayerNorm(dim)
        super.init()
        attention = a
    }

    /// `x`, `pos`: `[B, Q, C]`; `mask` `[B(·heads), Q, Q]`.
    public func callAsFunction(_ x: Tensor, pos: Tensor?, mask: [Bool]? = nil) -> Tensor {
        let qk = pos.map { x + $0 } ?? x
        return norm(x + attention(query: qk, key: qk, value: x, mask: mask))
    }
}

/// Post-norm masked cross-attention: `x ← LN(x + Attn(q = x + qpos, k = mem + pos, v = mem))`.
/// Keys `multihead_attn.*`, `norm.*`.
public final class CrossAttentionLayer: Module {
    @Child(key: "multihead_attn") public var attention: MultiheadAttention
    public let norm: LayerNorm

    public init(_ dim: Int, heads: Int, rng: inout RNG) {
        let a = MultiheadAttention(dim, heads: heads, rng: &rng)
        norm = LayerNorm(dim)
        super.init()
        attention = a
    }

    /// `x`, `queryPos`: `[B, Q, C]`; `memory`, `memoryPos`: `[B, T, C]`; `mask` `[B(·heads), Q, T]`.
    public func callAsFunction(_ x: Tensor, memory: Tensor, memoryPos: Tensor?, queryPos: Tensor?,
                               mask: [Bool]?) -> Tensor {
        let q = queryPos.map { x + $0 } ?? x
        let k = memoryPos.map { memory + $0 } ?? memory
        return norm(x + attention(query: q, key: k, value: memory, mask: mask))
    }
}

/// Post-norm FFN: `x ← LN(x + linear2(ReLU(linear1(x))))`. Keys `linear1.*`, `linear2.*`, `norm.*`.
/// Init: Xavier-uniform weights, PyTorch-default biases (Mask2Former's `_reset_parameters`).
public final class FFNLayer: Module {
    public let linear1: Linear
    public let linear2: Linear
    public let norm: LayerNorm

    public init(_ dim: Int, hidden: Int, rng: inout RNG) {
        linear1 = Linear(dim, hidden, rng: &rng)
        linear2 = Linear(hidden, dim, rng: &rng)
        Init.xavierUniform(linear1.weight, rng: &rng)
        Init.xavierUniform(linear2.weight, rng: &rng)
        norm = LayerNorm(dim)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        norm(x + linear2(linear1(x).relu()))
    }
}
