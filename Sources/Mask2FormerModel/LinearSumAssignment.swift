// Exact rectangular linear-sum assignment (shortest augmenting paths with dual potentials), in Double.
// Corresponds to scipy.optimize.linear_sum_assignment as called by the Hungarian matcher (docs/model.md#matcher).
import TensorCore

/// One assigned pair of a linear-sum assignment: `row` ↔ `col`.
public struct AssignedPair: Equatable, Hashable, Sendable {
    public var row: Int
    public var col: Int
    public init(row: Int, col: Int) { self.row = row; self.col = col }
}

/// Solves the rectangular linear-sum assignment problem: choose `min(rows, cols)` entries, no two in
/// the same row or column, with the smallest total cost.
///
/// `cost` is row-major `[rows, cols]`. Returns the pairs sorted by row (as scipy's
/// `linear_sum_assignment`). Empty matrices give no pairs. When `rows > cols` the transposed problem
/// is solved. The algorithm is the shortest-augmenting-path method with row and column potentials
/// (Jonker–Volgenant; Crouse 2016): one Dijkstra-like search per row of the smaller side, O(n²·m).
///
/// Non-finite entries never crash or hang the solver: they are first replaced by finite values (see
/// `sanitizedAssignmentCosts`), chosen so that whenever an assignment avoiding them exists, the
/// result is optimal among such assignments (NaN and +∞ act as forbidden-if-possible, −∞ as
/// taken-if-possible).
public func linearSumAssignment(_ cost: [Double], rows: Int, cols: Int) -> [AssignedPair] {
    precondition(rows >= 0 && cols >= 0 && cost.count == rows * cols,
                 "linearSumAssignment: \(cost.count) costs for \(rows)×\(cols)")
    if rows == 0 || cols == 0 { return [] }
    let c = sanitizedAssignmentCosts(cost, rows: rows, cols: cols)
    if rows <= cols {
        let colForRow = shortestAugmentingPathLSAP(c, rows: rows, cols: cols)
        return colForRow.enumerated().map { AssignedPair(row: $0.offset, col: $0.element) }
    }
    // rows > cols: solve the transpose (its rows are our columns), then sort by our row.
    var t = [Double](repeating: 0, count: rows * cols)
    for i in 0..<rows { for j in 0..<cols { t[j * rows + i] = c[i * cols + j] } }
    let rowForCol = shortestAugmentingPathLSAP(t, rows: cols, cols: rows)
    return rowForCol.enumerated().map { AssignedPair(row: $0.element, col: $0.offset) }.sorted { $0.row < $1.row }
}

/// `linearSumAssignment` of a `[rows, cols]` float tensor (read in Double).
public func linearSumAssignment(_ cost: Tensor) -> [AssignedPair] {
    precondition(cost.rank == 2, "linearSumAssignment: cost \(cost.shape) is not [rows, cols]")
    let values = cost.values.map { Double($0) }
    return linearSumAssignment(values, rows: cost.shape[0], cols: cost.shape[1])
}

/// Replaces non-finite costs by finite ones, keeping the optimum exact on the finite part.
///
/// With `lo`/`hi` the smallest/largest finite entry, `n = min(rows, cols)` and `span = hi − lo + 1`:
/// - NaN → `p1 = hi + (n+1)·span`: an assignment with one more NaN entry costs more than any
///   difference in finite cost, so the solver uses as few NaN entries as possible;
/// - +∞ → `p2 = p1 + (n+1)·(p1 − lo + 1)`: worse than any mix of NaN and finite entries;
/// - −∞ → `lo − (n+1)·(p2 − lo + 1)`: an assignment with one more −∞ entry is always better.
/// With no finite entry `lo = hi = 0`. When the finite magnitudes exceed 2⁶⁴ they are first scaled
/// by a power of two (exact, and the argmin is unchanged) so that the penalties and the solver's
/// potentials stay far from overflow.
public func sanitizedAssignmentCosts(_ cost: [Double], rows: Int, cols: Int) -> [Double] {
    var lo = Double.infinity, hi = -Double.infinity
    var allFinite = true
    for v in cost {
        if v.isFinite { lo = Swift.min(lo, v); hi = Swift.max(hi, v) } else { allFinite = false }
    }
    let magnitude = Swift.max(Swift.abs(lo.isFinite ? lo : 0), Swift.abs(hi.isFinite ? hi : 0))
    let limit = 0x1p64
    var scale = 1.0
    if magnitude > limit {
        // A power of two: multiplication by it is exact for normal numbers.
        scale = Double(sign: .plus, exponent: limit.exponent - magnitude.exponent - 1, significand: 1)
    }
    if allFinite && scale == 1 { return cost }
    if !lo.isFinite { lo = 0; hi = 0 }
    lo *= scale; hi *= scale
    let n = Double(Swift.min(rows, cols))
    let span = hi - lo + 1
    let nanValue = hi + (n + 1) * span
    let posInfValue = nanValue + (n + 1) * (nanValue - lo + 1)
    let negInfValue = lo - (n + 1) * (posInfValue - lo + 1)
    return cost.map { v in
        if v.isNaN { return nanValue }
        if v == .infinity { return posInfValue }
        if v == -.infinity { return negInfValue }
        return v * scale
    }
}

/// The core solver for `rows ≤ cols` and finite costs: returns the column of every row.
///
/// For each new row, a Dijkstra search over reduced costs `c[i][j] − u[i] − v[j]` finds the shortest
/// alternating path to a free column; the potentials are then updated so that reduced costs stay
/// non-negative on every assigned row and zero on the assigned pairs, and the path is flipped.
private func shortestAugmentingPathLSAP(_ cost: [Double], rows nr: Int, cols nc: Int) -> [Int] {
    precondition(nr <= nc)
    var u = [Double](repeating: 0, count: nr)
    var v = [Double](repeating: 0, count: nc)
    var colForRow = [Int](repeating: -1, count: nr)
    var rowForCol = [Int](repeating: -1, count: nc)
    var pathCost = [Double](repeating: .infinity, count: nc)
    var pathRow = [Int](repeating: -1, count: nc)
    var rowVisited = [Bool](repeating: false, count: nr)
    var colVisited = [Bool](repeating: false, count: nc)
    var remaining = [Int](repeating: 0, count: nc)

    cost.withUnsafeBufferPointer { c in
        for startRow in 0..<nr {
            // Reset the search state.
            for j in 0..<nc {
                pathCost[j] = .infinity
                pathRow[j] = -1
                colVisited[j] = false
                remaining[j] = nc - 1 - j
            }
            for i in 0..<nr { rowVisited[i] = false }
            var remainingCount = nc
            var distance = 0.0
            var sink = -1
            var i = startRow
            while sink < 0 {
                rowVisited[i] = true
                var bestSlot = 0
                var best = Double.infinity
                let ui = u[i]
                let rowBase = i * nc
                for slot in 0..<remainingCount {
                    let j = remaining[slot]
                    let r = distance + c[rowBase + j] - ui - v[j]
                    if r < pathCost[j] { pathRow[j] = i; pathCost[j] = r }
                    // Prefer a free column on ties: it ends the search sooner.
                    if pathCost[j] < best || (pathCost[j] == best && rowForCol[j] < 0) {
                        best = pathCost[j]; bestSlot = slot
                    }
                }
                // Costs are finite, so `best` is finite; `bestSlot` defaults to the first slot anyway.
                distance = best
                let j = remaining[bestSlot]
                colVisited[j] = true
                if pathRow[j] < 0 { pathRow[j] = i }
                remainingCount -= 1
                remaining[bestSlot] = remaining[remainingCount]
                if rowForCol[j] < 0 { sink = j } else { i = rowForCol[j] }
            }
            // Update the potentials.
            u[startRow] += distance
            for r in 0..<nr where rowVisited[r] && r != startRow {
                u[r] += distance - pathCost[colForRow[r]]
            }
            for j in 0..<nc where colVisited[j] {
                v[j] -= distance - pathCost[j]
            }
            // Flip the alternating path ending at the sink.
            var j = sink
            while true {
                let r = pathRow[j]
                rowForCol[j] = r
                let previous = colForRow[r]
                colForRow[r] = j
                if r == startRow { break }
                j = previous
            }
        }
    }
    return colForRow
}
