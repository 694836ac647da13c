// `maskpilot eval`: evaluate a trained model on a dataset split, under mpirun (disjoint shards per rank,
// results gathered on rank 0) or alone. Corresponds to detectron2's `train_net.py --eval-only` with
// inference_on_dataset + SemSegEvaluator / COCOEvaluator (segm) / COCOPanopticEvaluator; the work is done by
// Evaluation's ModelEvaluation, which the periodic evaluation during training uses too.
import ArgumentParser
import Distributed
import Evaluation
import Foundation
import Mask2FormerModel
import TensorCore
import Training

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate a model on a dataset split (mIoU, COCO mask AP or PQ); run under mpirun to shard it.",
        discussion: """
        The task follows data.format: ade20k → semantic (mIoU, fwIoU, pACC, mACC), coco-instance → COCO mask AP, \
        coco-panoptic → PQ/SQ/RQ; with eval.layer_consistency (default on) also MP-Former's mIoU-L_i and Util_i \
        per decoder layer. Each rank evaluates a contiguous shard of the split; rank 0 merges the evaluators, \
        prints the metrics and, with --output, writes OUTPUT/results.json and the predictions in the official \
        formats (coco_instances_results.json; panoptic_predictions.json + panoptic_predictions/*.png; \
        semantic/*.png with class + 1), which `maskpilot eval-results` and the official tools score again. \
        The numbers do not depend on the number of ranks. Prediction PNGs are encoded by the rank that predicts them and \
        written by rank 0 alone, so OUTPUT need not be shared between nodes.
        """)

    @OptionGroup var configOptions: InferenceConfigOptions

    @Option(help: "Model weights: a MaskPilot checkpoint, a weights-only .h5 (PyTorch layout), a .safetensors file, or a run folder (its last_checkpoint).")
    var weights: String

    @Option(help: "Split to evaluate (default: eval.split, else data.test_split).")
    var split: String?

    @Option(help: "Output folder for results.json and the prediction files.")
    var output: String?

    @Option(parsing: .unconditional, help: "Evaluate only the first N images of the split (default: eval.max_images; 0 = all).")
    var maxImages: Int?

    @OptionGroup var precisionOption: PrecisionOption

    func validate() throws { try requireOption("--max-images", maxImages, atLeast: 0) }

    func run() throws {
        let (loaded, weightsPath, warnings) = try configOptions.load(weights: weights)
        var cfg = loaded
        try precisionOption.apply(to: &cfg)
        let comm = try makeCommunicator()
        if comm.isCoordinator { for warning in warnings { print(warning) } }
        do {
            try evaluate(cfg, weights: weightsPath, comm: comm)
        } catch {
            if comm.size > 1 { comm.abort(code: 1, message: "\(error)") }
            throw RuntimeError(comm.size > 1 ? "rank \(comm.rank): \(error)" : "\(error)")
        }
    }

    /// Evaluates `weights` (the weights file `--weights` resolved to) under `cfg`.
    func evaluate(_ cfg: MaskPilotConfig, weights: String, comm: any Communicator) throws {
        let evaluation = try ModelEvaluation(config: cfg, split: split, maxImages: maxImages)
        var rng = RNG(seed: cfg.seed, stream: 0)
        let model = Mask2Former(cfg.model, rng: &rng)
        model.eval()
        let report = try loadPretrainedWeights(into: model, path: weights, ignore: [], option: "--weights")
        let s = evaluation.split
        if comm.isCoordinator {
            print("maskpilot eval — \(comm.size) rank(s), \(cfg.data.format.rawValue) \(s.root) split \(s.split), \(s.count) image(s), "
                  + "\(cfg.solver.precision.rawValue)")
            print(report.description)
        }
        guard report.missing.isEmpty else {
            throw EvaluationError(weights, "\(report.missing.count) tensor(s) of the model are not in the file (e.g. \(report.missing.prefix(3).joined(separator: ", "))); evaluating random weights there would be meaningless")
        }
        let progress = EvalProgress(worldSize: comm.size, style: ProgressLine.standardOutputStyle(period: 10))
        guard let outcome = try evaluation.run(model: model, communicator: comm, outputDirectory: output, observer: progress) else { return }
        print(outcome.text)
        if let output { print("wrote \(output)/results.json and the predictions") }
    }
}
