//! Replays the `btree_ops` fuzz target's interpreter (storage/fuzz/src/ops.rs) on seeded random
//! inputs, so CI exercises it without a fuzzing toolchain and a fuzz regression can be pinned
//! here as a byte string.

#[path = "../fuzz/src/ops.rs"]
mod ops;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn random_operation_sequences_match_the_model() {
    let mut rng = StdRng::seed_from_u64(0x6b65_656c);
    for _ in 0..1000 {
        let len = rng.random_range(0..800);
        let data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        ops::run(&data);
    }
}

#[test]
fn pinned_inputs_match_the_model() {
    // Create a tree, fill it past several leaves, commit, then a failing commit and a crash.
    let mut data = vec![8u8];
    for i in 0..120u8 {
        data.extend([0, i, 150, i]);
    }
    data.push(11);
    for i in 0..40u8 {
        data.extend([6, i * 2]);
    }
    data.extend([15, 3, 1, 10, 0, 0, 0b1010_1010]);
    ops::run(&data);
    ops::run(&[]);
    ops::run(&[8, 0, 255, 255, 9, 15, 0, 2]);
}
