//! Optimal one-to-one assignment of tracks to detections.
//!
//! Only *admissible* pairs (those that passed the tracker's gates) can be
//! matched, and among all matchings of admissible pairs we take the one of
//! greatest total affinity (the Hungarian / Kuhn–Munkres algorithm, from the
//! `pathfinding` crate). Greedy best-first matching is not enough: when two
//! faces are close, taking the single best pair first can leave the other
//! face without its only admissible partner.
//!
//! Gating makes the problem sparse: a face can only match boxes near it, so the
//! bipartite graph falls apart into small connected components (one per group
//! of nearby faces). We solve each component on its own, so the O(n³) cost of
//! Kuhn–Munkres applies to the size of a group, not to the number of faces in
//! the frame: a crowd of hundreds costs little more than linear time.

use pathfinding::prelude::{Matrix, kuhn_munkres};

/// An admissible pair: track (row) `row` may take detection (column) `col`,
/// with `affinity > 0` (larger is better).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub row: usize,
    pub col: usize,
    pub affinity: f32,
}

/// Affinities are turned into integers for Kuhn–Munkres (which needs an exact,
/// totally ordered weight): 1e6 steps per unit keeps six decimals, and the sum
/// over any realistic component stays far from `i64` overflow.
const WEIGHT_SCALE: f64 = 1e6;

/// The matching of greatest total affinity among `candidates`, as `(row, col)`
/// pairs sorted by row; each row and each column appears at most once.
/// `rows`/`cols` bound the indices used by `candidates`. Pairs with a
/// non-finite or non-positive affinity are ignored.
pub fn max_affinity_matching(
    rows: usize,
    cols: usize,
    candidates: &[Candidate],
) -> Vec<(usize, usize)> {
    let candidates: Vec<Candidate> = candidates
        .iter()
        .copied()
        .filter(|c| c.affinity.is_finite() && c.affinity > 0.0 && c.row < rows && c.col < cols)
        .collect();

    // Connected components of the bipartite graph: rows are nodes 0..rows,
    // columns are nodes rows..rows+cols.
    let mut components = DisjointSets::new(rows + cols);
    for c in &candidates {
        components.union(c.row, rows + c.col);
    }
    let mut by_component: Vec<(usize, Candidate)> = candidates
        .iter()
        .map(|c| (components.find(c.row), *c))
        .collect();
    by_component.sort_by_key(|(root, c)| (*root, c.row, c.col));

    let mut matches = Vec::new();
    for group in by_component.chunk_by(|a, b| a.0 == b.0) {
        let group: Vec<Candidate> = group.iter().map(|(_, c)| *c).collect();
        matches.extend(solve_component(&group));
    }
    matches.sort_unstable();
    matches
}

/// Kuhn–Munkres on one connected component. Absent pairs get weight 0 and
/// admissible ones at least 1, so a complete matching of maximum weight, once
/// its zero-weight pairs are dropped, is a maximum-affinity matching of the
/// admissible pairs.
fn solve_component(group: &[Candidate]) -> Vec<(usize, usize)> {
    if let [only] = group {
        return vec![(only.row, only.col)];
    }
    let mut local_rows: Vec<usize> = group.iter().map(|c| c.row).collect();
    let mut local_cols: Vec<usize> = group.iter().map(|c| c.col).collect();
    local_rows.sort_unstable();
    local_rows.dedup();
    local_cols.sort_unstable();
    local_cols.dedup();
    // kuhn_munkres assigns every row, so it needs rows ≤ columns: transpose
    // when there are more tracks than detections.
    let transpose = local_rows.len() > local_cols.len();
    let (n_rows, n_cols) = if transpose {
        (local_cols.len(), local_rows.len())
    } else {
        (local_rows.len(), local_cols.len())
    };
    let mut weights = Matrix::new(n_rows, n_cols, 0i64);
    for c in group {
        let r = local_rows
            .binary_search(&c.row)
            .expect("row of this component");
        let k = local_cols
            .binary_search(&c.col)
            .expect("column of this component");
        let weight = ((f64::from(c.affinity) * WEIGHT_SCALE).round() as i64).max(1);
        let cell = if transpose { (k, r) } else { (r, k) };
        weights[cell] = weights[cell].max(weight);
    }
    let (_, assignment) = kuhn_munkres(&weights);
    assignment
        .into_iter()
        .enumerate()
        .filter(|&(i, j)| weights[(i, j)] > 0)
        .map(|(i, j)| {
            if transpose {
                (local_rows[j], local_cols[i])
            } else {
                (local_rows[i], local_cols[j])
            }
        })
        .collect()
}

/// Union–find with path halving, for the connected components above.
struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra.max(rb)] = ra.min(rb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(row: usize, col: usize, affinity: f32) -> Candidate {
        Candidate { row, col, affinity }
    }

    #[test]
    fn optimal_matching_beats_greedy_when_the_best_pair_blocks_another() {
        // Greedy would take (0,0)=0.9 and leave row 1 with nothing; the optimum
        // is (0,1)+(1,0) = 1.5.
        let m = max_affinity_matching(2, 2, &[pair(0, 0, 0.9), pair(0, 1, 0.8), pair(1, 0, 0.7)]);
        assert_eq!(m, vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn pairs_without_an_admissible_candidate_stay_unmatched() {
        let m = max_affinity_matching(3, 3, &[pair(0, 2, 0.5), pair(2, 2, 0.6)]);
        assert_eq!(m, vec![(2, 2)]);
        assert!(max_affinity_matching(4, 0, &[]).is_empty());
    }

    #[test]
    fn more_rows_than_columns_are_solved_by_transposing() {
        let m = max_affinity_matching(3, 1, &[pair(0, 0, 0.2), pair(1, 0, 0.9), pair(2, 0, 0.4)]);
        assert_eq!(m, vec![(1, 0)]);
        let m = max_affinity_matching(
            3,
            2,
            &[
                pair(0, 0, 0.9),
                pair(1, 0, 0.8),
                pair(1, 1, 0.1),
                pair(2, 1, 0.5),
            ],
        );
        assert_eq!(m, vec![(0, 0), (2, 1)]);
    }

    #[test]
    fn separate_components_are_solved_independently() {
        // Two disjoint 2×2 problems, each with a greedy trap.
        let mut cands = vec![pair(0, 0, 0.9), pair(0, 1, 0.8), pair(1, 0, 0.7)];
        cands.extend([pair(2, 2, 0.9), pair(2, 3, 0.8), pair(3, 2, 0.7)]);
        let m = max_affinity_matching(4, 4, &cands);
        assert_eq!(m, vec![(0, 1), (1, 0), (2, 3), (3, 2)]);
    }

    #[test]
    fn non_finite_and_non_positive_affinities_are_ignored() {
        let m = max_affinity_matching(
            2,
            2,
            &[
                pair(0, 0, f32::NAN),
                pair(0, 1, 0.0),
                pair(1, 1, f32::INFINITY),
                pair(1, 0, 0.3),
            ],
        );
        assert_eq!(m, vec![(1, 0)]);
    }
}
