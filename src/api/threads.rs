//! The gRPC threads: a tokio multi-thread runtime whose workers run only on the gRPC cores, so
//! they never compete with the node's consensus and storage thread for its core.
//!
//! This module must never pin anything but the threads of the runtime it builds.

use std::io;
use std::time::Duration;

/// Name of the runtime's threads, as `top -H` and `ps -L` show them.
const THREAD_NAME: &str = "keelson-grpc";

/// The cores the gRPC threads run on: `--grpc-cores` if given, otherwise every core the process
/// may use except the node's (`--node-core`, or the last allowed core). With a single core there
/// is nothing to separate and the result is empty: no pinning.
pub fn grpc_cores(configured: &[usize], node_core: Option<usize>) -> Vec<usize> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    let allowed = allowed_cores();
    if allowed.len() < 2 {
        return Vec::new();
    }
    let node = node_core.or(allowed.last().copied());
    allowed.into_iter().filter(|&c| Some(c) != node).collect()
}

/// The runtime for the gRPC server: one worker per gRPC core (one when unpinned), each pinned to
/// the gRPC cores. A worker about to sleep busy-polls first, for up to `busy_poll`, while the node
/// owes some request an answer (`node::answer`), so the answer finds it awake.
pub fn grpc_runtime(cores: &[usize], busy_poll: Duration) -> io::Result<tokio::runtime::Runtime> {
    let cores = cores.to_vec();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.len().max(1))
        .thread_name(THREAD_NAME)
        .enable_all()
        .on_thread_park(move || crate::node::answer::spin_while_due(busy_poll))
        .on_thread_start(move || {
            if let Err(e) = pin_current_thread(&cores) {
                // Pinning is a performance measure: a thread that stays unpinned still serves.
                tracing::warn!(cores = ?cores, error = %e, "failed to pin a gRPC thread");
            }
        })
        .build()
}

/// The cores this process may run on.
fn allowed_cores() -> Vec<usize> {
    // SAFETY: `set` is a plain bit set owned by this frame; sched_getaffinity writes at most
    // `size_of::<cpu_set_t>()` bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Restricts the calling thread to `cores`; no-op for an empty list.
fn pin_current_thread(cores: &[usize]) -> io::Result<()> {
    if cores.is_empty() {
        return Ok(());
    }
    // SAFETY: as in `allowed_cores`; CPU_SET only touches bits inside `set`, and core numbers
    // beyond CPU_SETSIZE are skipped.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &core in cores.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(core, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_cores_win_and_default_leaves_the_node_core() {
        assert_eq!(grpc_cores(&[3, 5], Some(0)), vec![3, 5]);
        let allowed = allowed_cores();
        let default = grpc_cores(&[], None);
        if allowed.len() >= 2 {
            assert_eq!(default.len(), allowed.len() - 1);
            assert!(!default.contains(allowed.last().unwrap()));
        } else {
            assert!(default.is_empty());
        }
    }
}
