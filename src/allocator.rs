//! The server's memory allocator: mimalloc, and the one setting Keelson changes in it.
//!
//! Why not glibc malloc: every request allocates and frees small buffers on one thread and hands
//! some to another (gRPC decode on the gRPC threads, the batch on the node thread, the reply back),
//! and glibc's arenas spent a sixth of the server's CPU on the put path. With mimalloc the server
//! used about 35 instead of 55 µs of CPU per put at 1000 clients (docs/PERFORMANCE.md).
//!
//! Why purge at once: by default mimalloc gives freed memory back to the OS only after a delay, and
//! only when the owning thread allocates again. The restart path allocates and frees hundreds of
//! megabytes once (WAL replay, the key index rebuild) on threads that then go quiet, so the
//! memory stayed resident: 3x the anonymous memory after a restart. Purging immediately costs
//! little CPU on the request path and keeps resident memory what the server really uses.

use std::ffi::c_long;

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (the Rust bindings name no constant for
/// it). The dependency is pinned to an exact version so this index cannot move under us; a test
/// checks it still reads the option's default.
const MI_OPTION_PURGE_DELAY: mi_option_t = 15;

/// Sets mimalloc's options; call first thing in `main`.
pub fn configure() {
    // SAFETY: mi_option_set only stores an integer in mimalloc's option table.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// The purge delay mimalloc currently uses, in milliseconds.
pub fn purge_delay_ms() -> c_long {
    // SAFETY: mi_option_get only reads mimalloc's option table.
    unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The purge delay this mimalloc version starts with, in milliseconds (its options table
    /// says 1000; a comment in its header still says 10).
    const DEFAULT_PURGE_DELAY_MS: c_long = 1000;

    #[test]
    fn the_purge_delay_index_names_the_purge_delay() {
        // Unless the environment overrides it, the option starts at its default; a
        // different value means the index names another option.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(purge_delay_ms(), DEFAULT_PURGE_DELAY_MS);
        }
        configure();
        assert_eq!(purge_delay_ms(), 0);
    }
}
