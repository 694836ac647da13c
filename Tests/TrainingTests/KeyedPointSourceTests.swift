// Tests of the per-image keyed criterion points: an image draws the same points whichever batch position
// (hence whichever rank) it has (docs/architecture.md#habits: per-sample randomness keyed by (seed, epoch, image id)).
import Testing
import TensorCore
import Training

@Suite struct KeyedPointSourceTests {
    @Test func pointsDependOnTheImageNotItsBatchPosition() {
        let keys = (0..<3).map { KeyedPointSource.imageKey(epoch: 1, imageId: 40 + $0) }
        let a = KeyedPointSource(seed: 5), b = KeyedPointSource(seed: 5)
        a.begin(imageKeys: keys, iteration: 7)
        b.begin(imageKeys: [keys[2], keys[0]], iteration: 7)   // image 42 at position 0, image 40 at 1
        #expect(a.matcherPoints(prediction: 1, image: 2, count: 9).values == b.matcherPoints(prediction: 1, image: 0, count: 9).values)
        let pa = a.oversamplePoints(prediction: 1, pairImages: [0, 1, 2, 2], count: 6).values   // rows 2, 3: image 42
        let pb = b.oversamplePoints(prediction: 1, pairImages: [0, 0, 1], count: 6).values      // rows 0, 1: image 42
        #expect(Array(pa[24..<48]) == Array(pb[0..<24]))
        #expect(Array(pa[0..<12]) == Array(pb[24..<36]))   // image 40's first pair
        #expect(a.randomPoints(prediction: 1, pairImages: [2], count: 4).values
                == b.randomPoints(prediction: 1, pairImages: [0], count: 4).values)
        // Other pair, kind, call, prediction, iteration or seed: other points.
        #expect(Array(pa[24..<36]) != Array(pa[36..<48]))
        #expect(a.randomPoints(prediction: 1, pairImages: [2], count: 6).values != Array(pa[24..<36]))
        let first = a.matcherPoints(prediction: 1, image: 2, count: 9).values
        #expect(a.points(for: .maskPiloting).matcherPoints(prediction: 1, image: 2, count: 9).values != first)
        #expect(a.points(for: .matching).matcherPoints(prediction: 1, image: 2, count: 9).values == first)
        #expect(a.matcherPoints(prediction: 0, image: 2, count: 9).values != first)
        a.begin(imageKeys: keys, iteration: 8)
        #expect(a.matcherPoints(prediction: 1, image: 2, count: 9).values != first)
        let c = KeyedPointSource(seed: 6)
        c.begin(imageKeys: keys, iteration: 7)
        #expect(c.matcherPoints(prediction: 1, image: 2, count: 9).values != first)
        #expect(first.allSatisfy { $0 >= 0 && $0 < 1 })
    }
}
