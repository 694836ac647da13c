// EvaluationError: a problem with predictions or ground truth given to an evaluator, naming what is wrong.
// No reference counterpart (the COCO and panoptic APIs raise assertion errors).

/// A problem with evaluation inputs, naming the file or image and what is wrong.
public struct EvaluationError: Error, CustomStringConvertible, Sendable {
    public var context: String
    public var problem: String
    public init(_ context: String, _ problem: String) { self.context = context; self.problem = problem }
    public var description: String { context.isEmpty ? problem : "\(context): \(problem)" }
}
