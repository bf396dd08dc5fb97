//! The transparency log's Merkle proofs (SPEC §16, RFC 9162) checked by an independent
//! implementation: `tools/rfc9162_check.py`, the RFC's verification algorithms in Python with
//! hashlib only. Every proof of every tree from 1 to 300 leaves must verify there, and so must
//! proofs at random sizes up to 10^5; altered proofs must not.

use std::io::Write;
use std::process::{Command, Stdio};

use elicence::transparency::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, root, Hash, MemoryTree, Nodes,
};
use rand::{Rng, SeedableRng};

fn hex(hash: &Hash) -> String {
    data_encoding::HEXLOWER.encode(hash)
}

/// A proof as the JSON array of hex strings the checker reads.
fn hexes(proof: &[Hash]) -> String {
    let items: Vec<String> = proof.iter().map(|h| format!("\"{}\"", hex(h))).collect();
    format!("[{}]", items.join(","))
}

/// The JSON lines asking the checker about leaf `index` of the tree of `size`: its proof, and
/// (when `altered`) the proof with its first hash changed, which must fail.
fn inclusion_case(tree: &MemoryTree, index: u64, size: u64, altered: bool) -> Vec<String> {
    let proof = inclusion_proof(tree, index, size).unwrap().unwrap();
    let leaf = hex(&tree.perfect(0, index).unwrap());
    let root = hex(&root(tree, size).unwrap());
    let case = |proof: &[Hash], expect: bool| {
        let proof = hexes(proof);
        format!(
            r#"{{"inclusion": [{index}, {size}], "leaf": "{leaf}", "proof": {proof}, "root": "{root}", "expect": {expect}}}"#
        )
    };
    let mut cases = vec![case(&proof, true)];
    if let Some(first) = proof.first().filter(|_| altered) {
        let mut altered = proof.clone();
        altered[0] = leaf_hash(first);
        cases.push(case(&altered, false));
    }
    cases
}

/// The JSON lines asking the checker about the trees of `old` and `new` leaves: the proof, and
/// (when `altered`) the proof against another old root, which must fail.
fn consistency_case(tree: &MemoryTree, old: u64, new: u64, altered: bool) -> Vec<String> {
    let proof = hexes(&consistency_proof(tree, old, new).unwrap().unwrap());
    let old_root = root(tree, old).unwrap();
    let new_root = hex(&root(tree, new).unwrap());
    let case = |old_root: &Hash, expect: bool| {
        let old_root = hex(old_root);
        format!(
            r#"{{"consistency": [{old}, {new}], "old_root": "{old_root}", "new_root": "{new_root}", "proof": {proof}, "expect": {expect}}}"#
        )
    };
    let mut cases = vec![case(&old_root, true)];
    if old < new && altered {
        // A rewritten past: the same proof against another old root.
        cases.push(case(&leaf_hash(&old_root), false));
    }
    cases
}

fn check_with_python(cases: &[String]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/rfc9162_check.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs the independent RFC 9162 checker");
    let mut input = String::new();
    for case in cases {
        input.push_str(case);
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.starts_with(&format!("{} proofs checked, 0", cases.len())),
        "{report}"
    );
}

#[test]
fn every_proof_of_trees_up_to_300_leaves_verifies_in_an_independent_implementation() {
    let mut tree = MemoryTree::default();
    for i in 0u64..300 {
        tree.push(leaf_hash(&i.to_le_bytes()));
    }
    let mut cases = Vec::new();
    for size in 1..=300 {
        // Every leaf and every earlier size; one case in seven also altered (the checker must
        // not answer yes to everything).
        for m in 1..=size {
            let altered = (m + size) % 7 == 0;
            cases.extend(inclusion_case(&tree, m - 1, size, altered));
            cases.extend(consistency_case(&tree, m, size, altered));
        }
    }
    check_with_python(&cases);
}

#[test]
fn proofs_at_random_sizes_up_to_100_000_verify_in_an_independent_implementation() {
    let mut tree = MemoryTree::default();
    for i in 0u64..100_000 {
        tree.push(leaf_hash(&i.to_le_bytes()));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(9162);
    let mut cases = Vec::new();
    for _ in 0..500 {
        let size = rng.gen_range(1..=100_000);
        cases.extend(inclusion_case(&tree, rng.gen_range(0..size), size, true));
        cases.extend(consistency_case(&tree, rng.gen_range(1..=size), size, true));
    }
    check_with_python(&cases);
}
