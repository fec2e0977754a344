//! The checks etcd makes of a parsed configuration: `embed.Config.Validate` (listeners bind to
//! IP addresses, advertised URLs have hosts, timing ratios, compaction mode) and the bootstrap
//! checks of a new member against `--initial-cluster`.
//!
//! Owns: those checks and their messages, in etcd's order. Never: parses flag text.

use super::error::ConfigError;
use super::go_syntax::go_quote_list;
use super::urls::{Scheme, Url, join_urls};
use super::{ClusterState, Config, ELECTION_TIMEOUT_MS_MAX, ELECTION_TO_HEARTBEAT_MIN_RATIO};

impl Config {
    /// The checks of etcd's `embed.Config.Validate`, in its order.
    /// `has_initial_cluster`: `--initial-cluster` is in force (given, or the default when no
    /// discovery method replaced it).
    pub(super) fn validate(
        &self,
        compaction_mode: &str,
        has_initial_cluster: bool,
    ) -> Result<(), ConfigError> {
        for url in self
            .listen_peer_urls
            .iter()
            .chain(&self.listen_client_urls)
            .chain(&self.listen_metrics_urls)
        {
            check_bind_url(url).map_err(ConfigError::verify)?;
        }
        for (flag, urls) in [
            (
                "initial-advertise-peer-urls",
                &self.initial_advertise_peer_urls,
            ),
            ("advertise-client-urls", &self.advertise_client_urls),
        ] {
            if let Some(url) = urls.iter().find(|u| u.host.is_empty()) {
                return Err(ConfigError::verify(format_args!(
                    "--{flag} {:?} must be \"host:port\" (unexpected empty host ({url}))",
                    join_urls(urls)
                )));
            }
        }
        let bootstrap_methods = [
            self.discovery.url.is_some(),
            has_initial_cluster,
            self.discovery.srv.is_some(),
        ];
        if bootstrap_methods.iter().filter(|set| **set).count() > 1 {
            return Err(ConfigError::verify(
                "multiple discovery or bootstrap flags are set. Choose one of \"initial-cluster\", \
                 \"discovery\" or \"discovery-srv\"",
            ));
        }
        let heartbeat_ms = self.heartbeat_interval.as_millis();
        let election_ms = self.election_timeout.as_millis();
        if heartbeat_ms == 0 {
            return Err(ConfigError::verify(format_args!(
                "--heartbeat-interval must be >0 (set to {heartbeat_ms}ms)"
            )));
        }
        if election_ms == 0 {
            return Err(ConfigError::verify(format_args!(
                "--election-timeout must be >0 (set to {election_ms}ms)"
            )));
        }
        if u128::from(ELECTION_TO_HEARTBEAT_MIN_RATIO) * heartbeat_ms > election_ms {
            return Err(ConfigError::verify(format_args!(
                "--election-timeout[{election_ms}ms] should be at least as \
                 {ELECTION_TO_HEARTBEAT_MIN_RATIO} times as --heartbeat-interval[{heartbeat_ms}ms]"
            )));
        }
        if election_ms > u128::from(ELECTION_TIMEOUT_MS_MAX) {
            return Err(ConfigError::verify(format_args!(
                "--election-timeout[{election_ms}ms] is too long, and should be set less than \
                 {ELECTION_TIMEOUT_MS_MAX}ms"
            )));
        }
        if self.advertise_client_urls.is_empty() {
            return Err(ConfigError::verify(
                "--advertise-client-urls is required when --listen-client-urls is set explicitly",
            ));
        }
        if compaction_mode != "periodic" && compaction_mode != "revision" {
            return Err(ConfigError::verify(format_args!(
                "unknown auto-compaction-mode {compaction_mode:?}"
            )));
        }
        if self.lease_checkpoint_persist && !self.lease_checkpoint {
            return Err(ConfigError::verify(
                "setting experimental-enable-lease-checkpoint-persist requires \
                 experimental-enable-lease-checkpoint",
            ));
        }
        Ok(())
    }

    /// The checks etcd makes when it bootstraps a member from an empty data directory (etcd's
    /// `VerifyBootstrap` for a new cluster, `VerifyJoinExisting` otherwise), except that URLs are
    /// compared as written rather than after DNS resolution.
    pub fn verify_bootstrap(&self) -> Result<(), ConfigError> {
        let cluster_string = self
            .initial_cluster
            .iter()
            .flat_map(|(name, urls)| urls.iter().map(move |u| format!("{name}={u}")))
            .collect::<Vec<_>>()
            .join(",");
        let Some(local) = self.initial_cluster.get(&self.name) else {
            return Err(ConfigError::fatal(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                self.name
            )));
        };
        let mut all: Vec<String> = self
            .initial_cluster
            .values()
            .flatten()
            .map(Url::to_string)
            .collect();
        all.sort();
        if all.windows(2).any(|w| w[0] == w[1]) {
            return Err(ConfigError::fatal(format!(
                "initial cluster {cluster_string} has duplicate url"
            )));
        }
        if self.initial_cluster_state == ClusterState::Existing {
            return Ok(());
        }
        let advertised: Vec<String> = self
            .initial_advertise_peer_urls
            .iter()
            .map(Url::to_string)
            .collect();
        let listed: Vec<String> = local.iter().map(Url::to_string).collect();
        if advertised == listed {
            return Ok(());
        }
        let detail = match advertised.iter().zip(&listed).find(|(a, b)| a != b) {
            Some((a, b)) if advertised.len() == listed.len() => {
                format!("resolved urls: {a:?} != {b:?}")
            }
            _ => format!(
                "len({}) != len({})",
                go_quote_list(&advertised),
                go_quote_list(&listed)
            ),
        };
        let missing: Vec<String> = listed
            .iter()
            .filter(|u| !advertised.contains(u))
            .map(|u| format!("{}={u}", self.name))
            .collect();
        if !missing.is_empty() {
            return Err(ConfigError::fatal(format!(
                "--initial-cluster has {} but missing from --initial-advertise-peer-urls={} ({detail})",
                missing.join(","),
                advertised.join(",")
            )));
        }
        let own = advertised
            .iter()
            .map(|u| format!("{}={u}", self.name))
            .collect::<Vec<_>>()
            .join(",");
        let extra: Vec<&String> = advertised.iter().filter(|u| !listed.contains(u)).collect();
        Err(ConfigError::fatal(format!(
            "--initial-advertise-peer-urls has {} but missing from --initial-cluster={own}",
            extra
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(",")
        )))
    }
}

/// etcd's `checkBindURLs`: a listener needs an IP address (or `localhost`), not a host name.
fn check_bind_url(url: &Url) -> Result<(), String> {
    if matches!(url.scheme, Scheme::Unix | Scheme::Unixs) || url.host == "localhost" {
        return Ok(());
    }
    if url.host.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("expected IP in URL for binding ({url})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{err, parse, url};
    use std::collections::BTreeMap;

    #[test]
    fn timing_validation() {
        assert_eq!(
            err(&["--election-timeout", "400"]),
            "error verifying flags, --election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]. See 'etcd --help'."
        );
        parse(&["--election-timeout", "500"]).unwrap();
        assert_eq!(
            err(&["--heartbeat-interval", "0"]),
            "error verifying flags, --heartbeat-interval must be >0 (set to 0ms). See 'etcd --help'."
        );
        assert_eq!(
            err(&["--election-timeout", "0"]),
            "error verifying flags, --election-timeout must be >0 (set to 0ms). See 'etcd --help'."
        );
        assert_eq!(
            err(&[
                "--election-timeout",
                "60000",
                "--heartbeat-interval",
                "1000"
            ]),
            "error verifying flags, --election-timeout[60000ms] is too long, and should be set less than 50000ms. See 'etcd --help'."
        );
        parse(&[
            "--election-timeout",
            "50000",
            "--heartbeat-interval",
            "1000",
        ])
        .unwrap();
    }

    #[test]
    fn initial_cluster_defaults_follow_the_name() {
        // Name only: initial cluster becomes <name>=<advertise peer URLs>, data dir <name>.etcd.
        let c = parse(&[
            "--name",
            "n1",
            "--initial-advertise-peer-urls",
            "http://10.0.0.1:2380",
        ])
        .unwrap();
        assert_eq!(c.data_dir, "n1.etcd");
        assert_eq!(
            c.initial_cluster,
            BTreeMap::from([("n1".to_string(), vec![url("http://10.0.0.1:2380")])])
        );
        c.verify_bootstrap().unwrap();
        // The default name keeps the default cluster even if the peer URL changed, as in etcd,
        // which then refuses to bootstrap.
        let c = parse(&["--initial-advertise-peer-urls", "http://127.0.0.1:23803"]).unwrap();
        assert_eq!(
            c.verify_bootstrap().unwrap_err().to_string(),
            "--initial-cluster has default=http://localhost:2380 but missing from --initial-advertise-peer-urls=http://127.0.0.1:23803 (resolved urls: \"http://127.0.0.1:23803\" != \"http://localhost:2380\")"
        );
        // An explicit data dir and cluster are kept.
        let c = parse(&[
            "--name",
            "a",
            "--data-dir",
            "/var/lib/k",
            "--initial-cluster",
            "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380",
            "--initial-advertise-peer-urls",
            "http://10.0.0.1:2380",
        ])
        .unwrap();
        assert_eq!(c.data_dir, "/var/lib/k");
        assert_eq!(c.initial_cluster.len(), 2);
        c.verify_bootstrap().unwrap();
    }

    #[test]
    fn bootstrap_checks() {
        let with = |extra: &[&str]| {
            let mut a = vec!["--initial-advertise-peer-urls", "http://127.0.0.1:23803"];
            a.extend_from_slice(extra);
            parse(&a)
        };
        assert_eq!(
            with(&["--initial-cluster", "other=http://127.0.0.1:23803"])
                .unwrap()
                .verify_bootstrap()
                .unwrap_err()
                .to_string(),
            "couldn't find local name \"default\" in the initial cluster configuration"
        );
        assert_eq!(
            with(&["--initial-cluster", "foo"]).unwrap_err().to_string(),
            "error setting up initial cluster: URL scheme must be http, https, unix, or unixs: "
        );
        assert_eq!(
            with(&[
                "--initial-cluster",
                "default=http://127.0.0.1:23803,default=http://127.0.0.1:23804"
            ])
            .unwrap()
            .verify_bootstrap()
            .unwrap_err()
            .to_string(),
            "--initial-cluster has default=http://127.0.0.1:23804 but missing from --initial-advertise-peer-urls=http://127.0.0.1:23803 (len([\"http://127.0.0.1:23803\"]) != len([\"http://127.0.0.1:23803\" \"http://127.0.0.1:23804\"]))"
        );
        let c = parse(&[
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:23803,http://127.0.0.1:23805",
            "--initial-cluster",
            "default=http://127.0.0.1:23803",
        ])
        .unwrap();
        assert_eq!(
            c.verify_bootstrap().unwrap_err().to_string(),
            "--initial-advertise-peer-urls has http://127.0.0.1:23805 but missing from --initial-cluster=default=http://127.0.0.1:23803,default=http://127.0.0.1:23805"
        );
        assert_eq!(
            with(&[
                "--initial-cluster",
                "default=http://127.0.0.1:23803,b=http://127.0.0.1:23803"
            ])
            .unwrap()
            .verify_bootstrap()
            .unwrap_err()
            .to_string(),
            "initial cluster b=http://127.0.0.1:23803,default=http://127.0.0.1:23803 has duplicate url"
        );
    }
}
