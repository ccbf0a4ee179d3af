/// Scoring on equal terms: a piece counts as right when its pixels equal those of the piece that
/// belongs in the cell it was put in. Pieces with identical pixels (a blank background, a black
/// border) give the same picture in any order, so no solver that sees pixels can tell them apart;
/// exact-match metrics count their order, these do not.
public enum EqualTerms {
    /// The prediction relabelled among pixel-identical pieces, so that the exact-match metrics of
    /// the result are the equal-terms metrics of `prediction`.
    ///
    /// For each group `G` of identical pieces (in the project convention, `prediction[i]` is the
    /// cell of scrambled piece `i`), the cells the group occupies stay the group's; a member whose
    /// true cell is among them is moved there, and the other members take the remaining cells in
    /// ascending order (members in ascending index order). A piece is then right exactly when its
    /// pixels equal those of the true occupant of its predicted cell; pieces that are unique keep
    /// their cells.
    /// - Parameters:
    ///   - pieces: the scrambled pieces, `prediction.count` runs of `pieceLength` values.
    public static func prediction(truth: [Int], prediction: [Int], pieces: UnsafeBufferPointer<Float>,
                                  pieceLength: Int) -> [Int] {
        let n = prediction.count
        precondition(truth.count == n && pieces.count >= n * pieceLength, "pieces do not fit the permutations")
        var groups: [[Float]: [Int]] = [:]
        for i in 0..<n {
            let key = Array(pieces[(i * pieceLength)..<((i + 1) * pieceLength)])
            groups[key, default: []].append(i)
        }
        var result = prediction
        for members in groups.values where members.count > 1 {
            let occupied = Set(members.map { prediction[$0] })
            var remaining = occupied
            var unplaced: [Int] = []
            for i in members {
                if occupied.contains(truth[i]) {
                    result[i] = truth[i]
                    remaining.remove(truth[i])
                } else {
                    unplaced.append(i)
                }
            }
            for (i, cell) in zip(unplaced, remaining.sorted()) { result[i] = cell }
        }
        return result
    }
}
