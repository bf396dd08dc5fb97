//! The transparency log (SPEC §16): an append-only Merkle tree of everything issued, whose signed
//! heads and receipts let an outsider prove what the county issued and that nothing was removed.
//! So far: the tree's hashing and proofs (`merkle`); the stored log, heads and receipts follow.

pub mod merkle;
