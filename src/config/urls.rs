//! Client and peer URLs as etcd's `types.NewURLs` and `types.NewURLsMap` accept them.
//!
//! Owns: parsing, ordering and printing `scheme://host:port` URLs, URL lists and the
//! `--initial-cluster` map. Never: decides whether a listener may bind to a URL (that is
//! validation).

use std::collections::BTreeMap;
use std::fmt;

/// URL scheme accepted by etcd for client and peer URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheme {
    Http,
    Https,
    Unix,
    Unixs,
}

impl Scheme {
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Unix => "unix",
            Scheme::Unixs => "unixs",
        }
    }

    /// Whether the listener speaks TLS.
    pub const fn is_tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Unixs)
    }
}

/// A client or peer URL: `scheme://host:port`, no path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Url {
    pub scheme: Scheme,
    /// Host name or IP address, without the brackets of an IPv6 literal.
    pub host: String,
    pub port: u16,
}

impl Url {
    /// Parses one URL with the checks and messages of etcd's `types.NewURLs`.
    pub fn parse(input: &str) -> Result<Url, String> {
        let input = input.trim();
        let bad_scheme = || format!("URL scheme must be http, https, unix, or unixs: {input}");
        let (scheme, rest) = input.split_once("://").ok_or_else(bad_scheme)?;
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "unix" => Scheme::Unix,
            "unixs" => Scheme::Unixs,
            _ => return Err(bad_scheme()),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let bad_host = || format!("URL address does not have the form \"host:port\": {input}");
        let (host, port) = if let Some(after) = authority.strip_prefix('[') {
            let (host, tail) = after.split_once(']').ok_or_else(bad_host)?;
            (host, tail.strip_prefix(':').ok_or_else(bad_host)?)
        } else {
            let (host, port) = authority.rsplit_once(':').ok_or_else(bad_host)?;
            if host.contains(':') {
                return Err(bad_host());
            }
            (host, port)
        };
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_host());
        }
        let port = port.parse::<u16>().map_err(|_| bad_host())?;
        if !path.is_empty() {
            return Err(format!("URL must not contain a path: {input}"));
        }
        Ok(Url {
            scheme,
            host: host.to_string(),
            port,
        })
    }

    /// Parses a comma-separated list, sorted by its string form as etcd sorts it.
    pub fn parse_list(input: &str) -> Result<Vec<Url>, String> {
        if input.is_empty() {
            return Err("no valid URLs given".to_string());
        }
        let mut urls = input
            .split(',')
            .map(Url::parse)
            .collect::<Result<Vec<_>, _>>()?;
        urls.sort_by_cached_key(|u| u.to_string());
        Ok(urls)
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "{}://[{}]:{}",
                self.scheme.as_str(),
                self.host,
                self.port
            )
        } else {
            write!(f, "{}://{}:{}", self.scheme.as_str(), self.host, self.port)
        }
    }
}

pub(super) fn join_urls(urls: &[Url]) -> String {
    urls.iter()
        .map(Url::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// etcd's `types.NewURLsMap`: `name=url,name=url,...`; a name may repeat to list several URLs.
pub(super) fn parse_initial_cluster(s: &str) -> Result<BTreeMap<String, Vec<Url>>, String> {
    let mut raw: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for entry in s.split(',').filter(|e| !e.is_empty()) {
        let (name, url) = entry.split_once('=').unwrap_or((entry, ""));
        raw.entry(name.to_string()).or_default().push(url);
    }
    raw.into_iter()
        .map(|(name, urls)| {
            let mut parsed = urls
                .into_iter()
                .map(Url::parse)
                .collect::<Result<Vec<_>, _>>()?;
            parsed.sort_by_cached_key(|u| u.to_string());
            Ok((name, parsed))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::err;
    use crate::config::tests::parse;

    #[test]
    fn url_errors() {
        assert_eq!(
            err(&["--listen-client-urls", "foo"]),
            "invalid value \"foo\" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: foo"
        );
        assert_eq!(
            err(&["--listen-client-urls", "ftp://127.0.0.1:1"]),
            "invalid value \"ftp://127.0.0.1:1\" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: ftp://127.0.0.1:1"
        );
        assert_eq!(
            err(&["--listen-client-urls", "http://127.0.0.1:1/x"]),
            "invalid value \"http://127.0.0.1:1/x\" for flag -listen-client-urls: URL must not contain a path: http://127.0.0.1:1/x"
        );
        assert_eq!(
            err(&["--listen-client-urls", "http://127.0.0.1"]),
            "invalid value \"http://127.0.0.1\" for flag -listen-client-urls: URL address does not have the form \"host:port\": http://127.0.0.1"
        );
        assert_eq!(
            err(&[
                "--listen-client-urls",
                "http://example.com:2379",
                "--advertise-client-urls",
                "http://example.com:2379"
            ]),
            "error verifying flags, expected IP in URL for binding (http://example.com:2379). See 'etcd --help'."
        );
        assert_eq!(
            err(&["--listen-client-urls", "http://127.0.0.1:2379"]),
            "error verifying flags, --advertise-client-urls is required when --listen-client-urls is set explicitly. See 'etcd --help'."
        );
        assert_eq!(
            err(&["--initial-advertise-peer-urls", "http://:2380"]),
            "error verifying flags, --initial-advertise-peer-urls \"http://:2380\" must be \"host:port\" (unexpected empty host (http://:2380)). See 'etcd --help'."
        );
    }

    #[test]
    fn urls_are_parsed_and_sorted() {
        let c = parse(&[
            "--listen-client-urls",
            "https://127.0.0.1:2479, http://[::1]:2379",
            "--advertise-client-urls",
            "http://node1.example:2379",
        ])
        .unwrap();
        assert_eq!(
            c.listen_client_urls,
            vec![
                Url {
                    scheme: Scheme::Http,
                    host: "::1".into(),
                    port: 2379
                },
                Url {
                    scheme: Scheme::Https,
                    host: "127.0.0.1".into(),
                    port: 2479
                },
            ]
        );
        assert_eq!(c.listen_client_urls[0].to_string(), "http://[::1]:2379");
        assert!(c.listen_client_urls[1].scheme.is_tls());
        assert_eq!(c.advertise_client_urls[0].host, "node1.example");
    }
}
