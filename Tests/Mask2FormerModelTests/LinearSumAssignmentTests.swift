// Tests of the rectangular linear-sum-assignment solver against brute force, with ties and non-finite costs.
// Reference semantics: scipy.optimize.linear_sum_assignment (min(rows, cols) pairs sorted by row, optimal total).
import Testing
import TensorCore
import Mask2FormerModel

/// Brute-force references for the assignment tests (also used by the matcher and criterion tests).
enum LSAPRef {
    /// The smallest total over all assignments of min(rows, cols) pairs whose entries all satisfy
    /// `allowed` (nil when there is none), by exhaustive search.
    static func bruteForceAssignmentTotal(_ c: [Double], rows: Int, cols: Int,
                                   allowed: (Double) -> Bool = { _ in true }) -> Double? {
        if rows == 0 || cols == 0 { return 0 }
        // Enumerate injective maps from the smaller side into the larger one.
        let transposed = rows > cols
        let small = transposed ? cols : rows, large = transposed ? rows : cols
        func entry(_ s: Int, _ l: Int) -> Double { transposed ? c[l * cols + s] : c[s * cols + l] }
        var used = [Bool](repeating: false, count: large)
        var best: Double? = nil
        func search(_ s: Int, _ partial: Double) {
            if s == small {
                if best == nil || partial < best! { best = partial }
                return
            }
            for l in 0..<large where !used[l] {
                let v = entry(s, l)
                guard allowed(v) else { continue }
                used[l] = true
                search(s + 1, partial + v)
                used[l] = false
            }
        }
        search(0, 0)
        return best
    }

    /// Whether `pairs` is a valid assignment of a rows×cols matrix: min(rows, cols) pairs, rows strictly
    /// ascending, columns distinct, all in range.
    static func isValidAssignment(_ pairs: [AssignedPair], rows: Int, cols: Int) -> Bool {
        guard pairs.count == min(rows, cols) else { return false }
        for (i, p) in pairs.enumerated() {
            if p.row < 0 || p.row >= rows || p.col < 0 || p.col >= cols { return false }
            if i > 0 && pairs[i - 1].row >= p.row { return false }
        }
        return Set(pairs.map(\.col)).count == pairs.count
    }

    static func assignmentTotal(_ pairs: [AssignedPair], _ c: [Double], cols: Int) -> Double {
        pairs.reduce(0) { $0 + c[$1.row * cols + $1.col] }
    }
}

@Suite struct LinearSumAssignmentTests {
    /// All shapes up to 6×8 and 8×6, integer costs in 0…3 (many ties) and real costs of either sign.
    @Test func matchesBruteForceOnSmallRectangularMatrices() {
        var rng = RNG(seed: 42, stream: 1)
        var checked = 0
        for rows in 1...8 {
            for cols in 1...8 where min(rows, cols) <= 6 {
                for kind in 0..<3 {
                    let c: [Double] = (0..<(rows * cols)).map { _ in
                        switch kind {
                        case 0: return Double(rng.nextInt(below: 4))                  // ties
                        case 1: return rng.nextDouble() * 10 - 5                      // real, both signs
                        default: return Double(rng.nextInt(below: 3)) * 0.5 - 0.5     // ties incl. negatives
                        }
                    }
                    let pairs = linearSumAssignment(c, rows: rows, cols: cols)
                    #expect(LSAPRef.isValidAssignment(pairs, rows: rows, cols: cols), "\(rows)×\(cols) kind \(kind): \(pairs)")
                    let expected = LSAPRef.bruteForceAssignmentTotal(c, rows: rows, cols: cols)!
                    let got = LSAPRef.assignmentTotal(pairs, c, cols: cols)
                    #expect(abs(got - expected) <= 1e-9 * max(1, abs(expected)),
                            "\(rows)×\(cols) kind \(kind): total \(got) vs brute force \(expected)")
                    checked += 1
                }
            }
        }
        #expect(checked > 100)
    }

    @Test func squareCasesByHand() {
        // Classic 3×3 example: optimum 0→1, 1→0, 2→2 with total 5.
        let c: [Double] = [4, 1, 3,
                           2, 0, 5,
                           3, 2, 2]
        let pairs = linearSumAssignment(c, rows: 3, cols: 3)
        #expect(pairs == [AssignedPair(row: 0, col: 1), AssignedPair(row: 1, col: 0), AssignedPair(row: 2, col: 2)])
        // Tall matrix: rows 1 and 2 are the cheap ones; result sorted by row.
        let tall: [Double] = [9, 9,
                              1, 5,
                              5, 1]
        #expect(linearSumAssignment(tall, rows: 3, cols: 2) == [AssignedPair(row: 1, col: 0), AssignedPair(row: 2, col: 1)])
        // From a float tensor.
        let t = Tensor([3, 1, 0, 2], shape: [2, 2])
        #expect(linearSumAssignment(t) == [AssignedPair(row: 0, col: 1), AssignedPair(row: 1, col: 0)])
    }

    @Test func emptyMatricesGiveNoPairs() {
        #expect(linearSumAssignment([], rows: 0, cols: 0).isEmpty)
        #expect(linearSumAssignment([], rows: 0, cols: 5).isEmpty)
        #expect(linearSumAssignment([], rows: 4, cols: 0).isEmpty)
        #expect(linearSumAssignment(Tensor.zeros([0, 3])).isEmpty)
    }

    /// NaN / ±∞ never crash or hang, and always give a valid assignment.
    @Test func nonFiniteCostsGiveValidAssignments() {
        var rng = RNG(seed: 7, stream: 2)
        for trial in 0..<60 {
            let rows = 1 + rng.nextInt(below: 7), cols = 1 + rng.nextInt(below: 7)
            let c: [Double] = (0..<(rows * cols)).map { _ in
                switch rng.nextInt(below: 8) {
                case 0: return .nan
                case 1: return .infinity
                case 2: return -.infinity
                default: return rng.nextDouble() * 4 - 2
                }
            }
            let pairs = linearSumAssignment(c, rows: rows, cols: cols)
            #expect(LSAPRef.isValidAssignment(pairs, rows: rows, cols: cols), "trial \(trial) \(rows)×\(cols): \(pairs)")
        }
        for special in [Double.nan, .infinity, -.infinity] {
            let c = [Double](repeating: special, count: 12)
            #expect(LSAPRef.isValidAssignment(linearSumAssignment(c, rows: 3, cols: 4), rows: 3, cols: 4))
            #expect(LSAPRef.isValidAssignment(linearSumAssignment(c, rows: 4, cols: 3), rows: 4, cols: 3))
        }
        // Huge finite magnitudes next to non-finite entries.
        let huge: [Double] = [1e308, -1e308, .nan, 1.7e308, .infinity, -.infinity]
        #expect(LSAPRef.isValidAssignment(linearSumAssignment(huge, rows: 2, cols: 3), rows: 2, cols: 3))
    }

    /// When an assignment avoiding NaN and +∞ exists, the solver finds the best such one.
    @Test func nonFiniteEntriesAvoidedAndFinitePartExact() {
        var rng = RNG(seed: 11, stream: 3)
        for trial in 0..<80 {
            let rows = 1 + rng.nextInt(below: 6), cols = 1 + rng.nextInt(below: 7)
            var c: [Double] = (0..<(rows * cols)).map { _ in
                let r = rng.nextInt(below: 10)
                if r == 0 { return .nan }
                if r == 1 { return .infinity }
                return trial % 2 == 0 ? Double(rng.nextInt(below: 5)) : rng.nextDouble() * 10 - 5
            }
            // Guarantee a finite assignment: a random injective set of entries is finite.
            let perm = rng.permutation(max(rows, cols))
            for s in 0..<min(rows, cols) {
                let (i, j) = rows <= cols ? (s, perm[s]) : (perm[s], s)
                if !c[i * cols + j].isFinite { c[i * cols + j] = rng.nextDouble() * 10 - 5 }
            }
            let pairs = linearSumAssignment(c, rows: rows, cols: cols)
            #expect(LSAPRef.isValidAssignment(pairs, rows: rows, cols: cols))
            #expect(pairs.allSatisfy { c[$0.row * cols + $0.col].isFinite }, "trial \(trial): used a non-finite entry")
            let expected = LSAPRef.bruteForceAssignmentTotal(c, rows: rows, cols: cols, allowed: { $0.isFinite })!
            let got = LSAPRef.assignmentTotal(pairs, c, cols: cols)
            #expect(abs(got - expected) <= 1e-9 * max(1, abs(expected)), "trial \(trial): \(got) vs \(expected)")
        }
    }

    @Test func negativeInfinityIsTakenAndNaNPreferredToInfinity() {
        // A −∞ entry in an otherwise expensive position is used.
        let c: [Double] = [0, 0, 9,
                           0, 0, 0,
                           -.infinity, 0, 0]
        #expect(linearSumAssignment(c, rows: 3, cols: 3).contains(AssignedPair(row: 2, col: 0)))
        // Forced to use one non-finite entry in row 0: NaN is preferred over +∞.
        let d: [Double] = [.infinity, .nan,
                           0, 0]
        #expect(linearSumAssignment(d, rows: 2, cols: 2) == [AssignedPair(row: 0, col: 1), AssignedPair(row: 1, col: 0)])
        // Sanitised values are finite and ordered −∞ < finite < NaN < +∞.
        let s = sanitizedAssignmentCosts([-.infinity, -3, 5, .nan, .infinity], rows: 1, cols: 5)
        #expect(s.allSatisfy { $0.isFinite })
        #expect(s[0] < s[1] && s[1] == -3 && s[2] == 5 && s[2] < s[3] && s[3] < s[4])
    }

    @Test func hugeFiniteCostsKeepTheOptimum() {
        // Magnitudes near 1e300 are rescaled by a power of two: the argmin is that of the unscaled problem.
        var rng = RNG(seed: 5, stream: 4)
        for _ in 0..<20 {
            let rows = 2 + rng.nextInt(below: 4), cols = 2 + rng.nextInt(below: 4)
            let base: [Double] = (0..<(rows * cols)).map { _ in rng.nextDouble() * 10 - 5 }
            let scaled = base.map { $0 * 0x1p1000 }
            let pairs = linearSumAssignment(scaled, rows: rows, cols: cols)
            #expect(LSAPRef.isValidAssignment(pairs, rows: rows, cols: cols))
            let expected = LSAPRef.bruteForceAssignmentTotal(base, rows: rows, cols: cols)!
            #expect(abs(LSAPRef.assignmentTotal(pairs, base, cols: cols) - expected) <= 1e-9 * max(1, abs(expected)))
        }
    }
}
