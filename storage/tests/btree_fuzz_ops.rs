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

#[test]
fn pinned_deferred_durability_inputs_match_the_model() {
    // Fill a tree with unsynced commits, sync, more unsynced commits, then a crash keeping every
    // in-flight write: only the synced state may come back.
    let mut data = vec![8u8];
    for i in 0..60u8 {
        data.extend([0, i, 150, i]);
        if i % 20 == 19 {
            data.push(16);
        }
    }
    data.push(17);
    for i in 0..30u8 {
        data.extend([6, i * 2]);
    }
    data.extend([16, 18, 1]);
    // Unsynced commits then a sync whose n-th device operation fails, for each n, then a crash.
    for fail_at in 0..6u8 {
        for i in 0..10u8 {
            data.extend([0, i + 100, 40, i]);
        }
        data.extend([19, 0x80 | fail_at, 1]);
    }
    // A failing unsynced commit.
    data.extend([0, 7, 7, 7, 19, 0, 0]);
    ops::run(&data);
}
