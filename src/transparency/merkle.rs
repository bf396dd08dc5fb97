//! The Merkle tree of RFC 9162 §2.1 (SPEC §16): leaf = SHA-256(0x00 ‖ entry), node =
//! SHA-256(0x01 ‖ left ‖ right), a tree of n leaves split at the largest power of two below n.
//!
//! Proofs are built from *perfect* subtrees — the hash of leaves [i·2^l, (i+1)·2^l), which never
//! changes once its last leaf is appended — read through [`Nodes`], so a store that keeps them
//! answers any proof with O(log n) reads instead of rebuilding the tree. Every split the
//! recursion makes is aligned, so each range it needs is either perfect or the tree's right edge.
//! Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2, except that a tree is taken to be
//! consistent with itself given an empty proof and equal roots (the RFC has no proof for that
//! case; a verifier comparing a head with itself needs one).

use ring::digest::{Context, SHA256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash of a leaf holding `entry`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    hash_of(&[&[0x00], entry])
}

/// The hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    hash_of(&[&[0x01], left, right])
}

fn hash_of(parts: &[&[u8]]) -> Hash {
    let mut context = Context::new(&SHA256);
    for part in parts {
        context.update(part);
    }
    context
        .finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// The hash of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    hash_of(&[])
}

/// Where a tree's perfect subtrees are read from.
pub trait Nodes {
    type Error;

    /// The hash of the perfect subtree at `level` (2^level leaves) and position `index`: the
    /// root of leaves [index·2^level, (index+1)·2^level). Level 0 is the leaf hashes.
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// The largest power of two smaller than `n` (n ≥ 2): where RFC 9162 splits a tree.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH of the `n` leaves from `start`: perfect when n is a power of two (every range asked for
/// is aligned to its size), else its two halves combined; the empty tree's for none.
fn range_root<N: Nodes>(nodes: &N, start: u64, n: u64) -> Result<Hash, N::Error> {
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() {
        let level = n.trailing_zeros();
        return nodes.perfect(level, start >> level);
    }
    let k = split(n);
    let left = nodes.perfect(k.trailing_zeros(), start >> k.trailing_zeros())?;
    let right = range_root(nodes, start + k, n - k)?;
    Ok(node_hash(&left, &right))
}

/// The root of a tree of `size` leaves (the empty tree's for 0).
pub fn root<N: Nodes>(nodes: &N, size: u64) -> Result<Hash, N::Error> {
    range_root(nodes, 0, size)
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1:
/// PATH(m, D[n])), leaf-side first; None when the leaf is not in that tree.
pub fn inclusion_proof<N: Nodes>(
    nodes: &N,
    index: u64,
    size: u64,
) -> Result<Option<Vec<Hash>>, N::Error> {
    if index >= size {
        return Ok(None);
    }
    let mut path = Vec::new();
    let (mut start, mut n, mut m) = (0, size, index);
    // Walk down from the root; the siblings come out root-side first.
    while n > 1 {
        let k = split(n);
        if m < k {
            path.push(range_root(nodes, start + k, n - k)?);
            n = k;
        } else {
            path.push(range_root(nodes, start, k)?);
            start += k;
            m -= k;
            n -= k;
        }
    }
    path.reverse();
    Ok(Some(path))
}

/// The consistency proof between the trees of `old` and `new` leaves (RFC 9162 §2.1.4.1:
/// PROOF(m, D[n])), empty when they are equal; None unless `0 < old ≤ new`.
pub fn consistency_proof<N: Nodes>(
    nodes: &N,
    old: u64,
    new: u64,
) -> Result<Option<Vec<Hash>>, N::Error> {
    if old == 0 || old > new {
        return Ok(None);
    }
    let mut proof = Vec::new();
    if old == new {
        return Ok(Some(proof));
    }
    // SUBPROOF(m, D[start:start+n], b), unrolled: b says whether the old tree's root is the
    // current range itself (then it is not included).
    let (mut start, mut n, mut m, mut whole) = (0, new, old, true);
    loop {
        if m == n {
            if !whole {
                proof.push(range_root(nodes, start, n)?);
            }
            break;
        }
        let k = split(n);
        if m <= k {
            proof.push(range_root(nodes, start + k, n - k)?);
            n = k;
        } else {
            proof.push(range_root(nodes, start, k)?);
            start += k;
            m -= k;
            n -= k;
            whole = false;
        }
    }
    proof.reverse();
    Ok(Some(proof))
}

/// RFC 9162 §2.1.3.2: whether `proof` shows leaf `index` with hash `leaf` in the tree of `size`
/// leaves whose root is `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    root_from_inclusion(index, size, leaf, proof).as_ref() == Some(root)
}

/// The root that `proof` gives the tree of `size` leaves with leaf `index` hashed `leaf`; None
/// when the proof has the wrong shape for that position (RFC 9162 §2.1.3.2 without the final
/// comparison: a receipt signs the root, so the verifier checks the signature over this).
pub fn root_from_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return None;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    (s_n == 0).then_some(r)
}

/// RFC 9162 §2.1.4.2: whether `proof` shows the tree of `old` leaves with root `old_root` to be
/// a prefix of the tree of `new` leaves with root `new_root`.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    new_root_from_consistency(old, new, old_root, proof).as_ref() == Some(new_root)
}

/// The root of the tree of `new` leaves that `proof` shows to extend the tree of `old` leaves
/// with root `old_root`; None when it does not (RFC 9162 §2.1.4.2 without the comparison with
/// the new root, which a receipt's signature covers instead).
pub fn new_root_from_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    proof: &[Hash],
) -> Option<Hash> {
    if old == 0 || old > new {
        return None;
    }
    if old == new {
        return proof.is_empty().then_some(*old_root);
    }
    // When old is a power of two, the old root is the proof's implicit first node.
    let with_old_root;
    let proof = if old.is_power_of_two() {
        with_old_root = [&[*old_root][..], proof].concat();
        &with_old_root[..]
    } else {
        proof
    };
    let (first, rest) = proof.split_first()?;
    let (mut f_n, mut s_n) = (old - 1, new - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut f_r, mut s_r) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return None;
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    (f_r == *old_root && s_n == 0).then_some(s_r)
}

/// A whole tree in memory: every perfect subtree, level by level. For tests and for checking a
/// stored tree against its leaves; a store keeps the same levels in its tables.
#[derive(Debug, Default, Clone)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// Appends a leaf's hash, completing the perfect subtrees it closes.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(hash);
            let row = &self.levels[level];
            if row.len() % 2 == 1 {
                break;
            }
            hash = node_hash(&row[row.len() - 2], &row[row.len() - 1]);
            level += 1;
        }
    }

    /// Leaves appended so far.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }
}

/// A perfect subtree a tree does not (yet) hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the tree holds no perfect subtree at level {level}, index {index}")]
pub struct MissingNode {
    pub level: u32,
    pub index: u64,
}

impl Nodes for MemoryTree {
    type Error = MissingNode;

    fn perfect(&self, level: u32, index: u64) -> Result<Hash, MissingNode> {
        self.levels
            .get(level as usize)
            .and_then(|row| row.get(index as usize))
            .copied()
            .ok_or(MissingNode { level, index })
    }
}

/// Where a perfect subtree sits: (level, index).
pub type Position = (u32, u64);

/// Reads of a computation over [`Nodes`], recorded by [`nodes_read_by`].
pub struct Recorder(std::cell::RefCell<Vec<(u32, u64)>>);

impl Nodes for Recorder {
    type Error = std::convert::Infallible;

    fn perfect(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        self.0.borrow_mut().push((level, index));
        Ok([0; 32])
    }
}

/// The perfect subtrees `compute` reads. Which nodes a root or a proof needs depends only on
/// the sizes, never on the hashes, so a store fetches them all in one query and then runs the
/// computation again over [`KnownNodes`].
pub fn nodes_read_by<T>(compute: impl FnOnce(&Recorder) -> T) -> Vec<(u32, u64)> {
    let recorder = Recorder(Default::default());
    compute(&recorder);
    let mut wanted = recorder.0.into_inner();
    wanted.sort_unstable();
    wanted.dedup();
    wanted
}

/// Perfect subtrees fetched from a store, by (level, index).
#[derive(Debug, Default, Clone)]
pub struct KnownNodes(pub std::collections::HashMap<(u32, u64), Hash>);

impl Nodes for KnownNodes {
    type Error = MissingNode;

    fn perfect(&self, level: u32, index: u64) -> Result<Hash, MissingNode> {
        self.0
            .get(&(level, index))
            .copied()
            .ok_or(MissingNode { level, index })
    }
}

/// The right edge of a tree of `size` leaves: its largest perfect subtrees, one per set bit of
/// `size` — all that appending to it reads.
pub fn frontier(size: u64) -> Vec<(u32, u64)> {
    (0..64)
        .filter(|level| size >> level & 1 == 1)
        .map(|level| (level, (size >> level) - 1))
        .collect()
}

/// Appends `leaves` to a tree of `size` leaves whose [`frontier`] is in `known`: the perfect
/// subtrees the new leaves add, leaves first (`known` gains them too).
pub fn append(
    known: &mut KnownNodes,
    size: u64,
    leaves: &[Hash],
) -> Result<Vec<(Position, Hash)>, MissingNode> {
    let mut added = Vec::with_capacity(leaves.len() * 2);
    for (index, leaf) in (size..).zip(leaves) {
        let (mut level, mut at, mut hash) = (0, index, *leaf);
        loop {
            known.0.insert((level, at), hash);
            added.push(((level, at), hash));
            if at & 1 == 0 {
                break;
            }
            hash = node_hash(&known.perfect(level, at - 1)?, &hash);
            level += 1;
            at >>= 1;
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appending_from_the_frontier_builds_the_same_subtrees_as_a_whole_tree() {
        for (start, more) in [(0, 1), (0, 13), (1, 1), (5, 3), (8, 8), (13, 50), (64, 1)] {
            let whole = tree(start + more);
            let mut known = KnownNodes::default();
            for (level, index) in frontier(start) {
                known
                    .0
                    .insert((level, index), whole.perfect(level, index).unwrap());
            }
            let leaves: Vec<Hash> = (start..start + more)
                .map(|i| leaf_hash(&i.to_be_bytes()))
                .collect();
            let added = append(&mut known, start, &leaves).unwrap();
            for ((level, index), hash) in &added {
                assert_eq!(whole.perfect(*level, *index).unwrap(), *hash);
            }
            assert_eq!(
                root(&known, start + more).unwrap(),
                root(&whole, start + more).unwrap()
            );
            let wanted = nodes_read_by(|r| root(r, start + more));
            assert!(
                wanted.iter().all(|n| known.0.contains_key(n)),
                "{start}+{more}"
            );
        }
    }

    fn tree(size: u64) -> MemoryTree {
        let mut tree = MemoryTree::default();
        for i in 0..size {
            tree.push(leaf_hash(&i.to_be_bytes()));
        }
        tree
    }

    /// MTH straight from RFC 9162's definition, over the leaf hashes: the reference the
    /// stored-subtree arithmetic must agree with.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    #[test]
    fn roots_agree_with_the_definition_and_rfc_vectors() {
        // The empty tree and a one-leaf tree of the empty entry (RFC 9162 §2.1.1).
        assert_eq!(
            data_encoding::HEXLOWER.encode(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            data_encoding::HEXLOWER.encode(&leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let big = tree(300);
        for size in 0..=300 {
            let leaves = &big.levels[0][..size as usize];
            assert_eq!(root(&big, size).unwrap(), reference_root(leaves), "{size}");
        }
    }

    #[test]
    fn every_inclusion_and_consistency_proof_up_to_64_leaves_verifies_and_no_other_does() {
        let big = tree(64);
        for size in 1..=64 {
            let root_n = root(&big, size).unwrap();
            for index in 0..size {
                let leaf = big.perfect(0, index).unwrap();
                let proof = inclusion_proof(&big, index, size).unwrap().unwrap();
                assert!(verify_inclusion(index, size, &leaf, &proof, &root_n));
                assert!(!verify_inclusion(index ^ 1, size, &leaf, &proof, &root_n) || size == 1);
                let other = leaf_hash(b"not in the tree");
                assert!(!verify_inclusion(index, size, &other, &proof, &root_n));
            }
            for old in 1..=size {
                let root_m = root(&big, old).unwrap();
                let proof = consistency_proof(&big, old, size).unwrap().unwrap();
                assert!(
                    verify_consistency(old, size, &root_m, &root_n, &proof),
                    "{old}→{size}"
                );
                let forked = leaf_hash(b"a different past");
                assert!(
                    old == size || !verify_consistency(old, size, &forked, &root_n, &proof),
                    "a different old root must fail {old}→{size}"
                );
            }
        }
    }

    #[test]
    fn proofs_outside_the_tree_are_refused_not_panicked() {
        let small = tree(5);
        assert_eq!(inclusion_proof(&small, 5, 5), Ok(None));
        assert_eq!(consistency_proof(&small, 0, 5), Ok(None));
        assert_eq!(consistency_proof(&small, 6, 5), Ok(None));
        assert_eq!(
            root(&small, 6),
            Err(MissingNode { level: 1, index: 2 }),
            "a size past the tree names what is missing"
        );
    }

    #[test]
    fn proofs_of_a_large_tree_are_logarithmic() {
        let big = tree(100_000);
        let proof = inclusion_proof(&big, 12_345, 100_000).unwrap().unwrap();
        assert!(proof.len() <= 17, "{} hashes", proof.len());
        let proof = consistency_proof(&big, 65_537, 100_000).unwrap().unwrap();
        assert!(proof.len() <= 2 * 17, "{} hashes", proof.len());
    }
}
