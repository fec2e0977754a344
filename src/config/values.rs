//! Values with a syntax of their own beyond Go's: etcd's auto-compaction retention (hours, a
//! duration or a revision count, by mode) and Keelson's CPU lists.
//!
//! Owns: those two parsers and their messages. Never: reads flags.

use std::time::Duration;

use super::go_syntax::parse_go_duration;
use super::{AutoCompaction, CompactionMode};

/// etcd's `parseCompactionRetention`: a plain non-negative integer is hours (periodic) or a
/// revision count (revision); otherwise a Go duration.
pub(super) fn parse_retention(
    mode: CompactionMode,
    retention: &str,
) -> Result<AutoCompaction, String> {
    let result = if let Ok(n) = retention.parse::<u64>() {
        match mode {
            _ if n == 0 => AutoCompaction::Disabled,
            CompactionMode::Revision => AutoCompaction::Revision(n),
            CompactionMode::Periodic => {
                let hours = n
                    .checked_mul(3600)
                    .ok_or_else(|| format!("retention {retention:?} is too long"))?;
                AutoCompaction::Periodic(Duration::from_secs(hours))
            }
        }
    } else {
        let (negative, d) = parse_go_duration(retention)?;
        if negative && !d.is_zero() {
            return Err(format!("negative retention {retention:?}"));
        }
        match mode {
            CompactionMode::Revision => {
                return Err(format!(
                    "revision mode needs a number of revisions, got {retention:?}"
                ));
            }
            _ if d.is_zero() => AutoCompaction::Disabled,
            CompactionMode::Periodic => AutoCompaction::Periodic(d),
        }
    };
    Ok(result)
}

/// A CPU list in the kernel's cpuset syntax: `0-3,6`. Empty means none.
pub(super) fn parse_core_list(s: &str) -> Result<Vec<usize>, String> {
    let mut cores = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let bad = || format!("invalid CPU list {s:?}");
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (
                lo.parse::<usize>().map_err(|_| bad())?,
                hi.parse::<usize>().map_err(|_| bad())?,
            ),
            None => {
                let c = part.parse::<usize>().map_err(|_| bad())?;
                (c, c)
            }
        };
        if lo > hi {
            return Err(bad());
        }
        for c in lo..=hi {
            if cores.contains(&c) {
                return Err(format!("CPU {c} listed twice in {s:?}"));
            }
            cores.push(c);
        }
    }
    Ok(cores)
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{err, parse, parse_env};
    use crate::config::{AutoCompaction, CompactionMode};
    use std::time::Duration;

    #[test]
    fn auto_compaction() {
        let periodic =
            |r: &str| parse(&["--auto-compaction-retention", r]).map(|c| c.auto_compaction);
        assert_eq!(
            periodic("1").unwrap(),
            AutoCompaction::Periodic(Duration::from_secs(3600))
        );
        assert_eq!(
            periodic("1h").unwrap(),
            AutoCompaction::Periodic(Duration::from_secs(3600))
        );
        assert_eq!(
            periodic("30m").unwrap(),
            AutoCompaction::Periodic(Duration::from_secs(1800))
        );
        assert_eq!(
            periodic("1.5h").unwrap(),
            AutoCompaction::Periodic(Duration::from_secs(5400))
        );
        assert_eq!(periodic("0").unwrap(), AutoCompaction::Disabled);
        assert_eq!(
            periodic("1x").unwrap_err().to_string(),
            "error parsing CompactionRetention: time: unknown unit \"x\" in duration \"1x\""
        );
        assert_eq!(
            periodic("-1").unwrap_err().to_string(),
            "error parsing CompactionRetention: time: missing unit in duration \"-1\""
        );
        let c = parse(&[
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            "1000",
        ])
        .unwrap();
        assert_eq!(c.auto_compaction_mode, CompactionMode::Revision);
        assert_eq!(c.auto_compaction, AutoCompaction::Revision(1000));
        assert!(
            parse(&[
                "--auto-compaction-mode",
                "revision",
                "--auto-compaction-retention",
                "1h"
            ])
            .is_err()
        );
        assert_eq!(
            err(&["--auto-compaction-mode", "bad"]),
            "error verifying flags, unknown auto-compaction-mode \"bad\". See 'etcd --help'."
        );
    }

    #[test]
    fn keelson_placement_flags() {
        let c = parse(&["--grpc-cores", "0-2,5", "--node-core", "3"]).unwrap();
        assert_eq!(c.grpc_cores, vec![0, 1, 2, 5]);
        assert_eq!(c.node_core, Some(3));
        let c = parse_env(&[], &[("ETCD_GRPC_CORES", "1")]).unwrap();
        assert_eq!(c.grpc_cores, vec![1]);
        assert_eq!(
            err(&["--grpc-cores", "3-1"]),
            "invalid value \"3-1\" for flag -grpc-cores: invalid CPU list \"3-1\""
        );
        assert!(parse(&["--grpc-cores", "1,1"]).is_err());
        assert_eq!(
            parse(&["--busy-poll", "0"]).unwrap().busy_poll,
            Duration::ZERO
        );
        let c = parse_env(&[], &[("ETCD_BUSY_POLL", "1.5ms")]).unwrap();
        assert_eq!(c.busy_poll, Duration::from_micros(1500));
        assert!(parse(&["--busy-poll", "-1ms"]).is_err());
    }
}
