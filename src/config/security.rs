//! The TLS flags of the client and peer listeners, and `--cipher-suites` checked against the
//! names etcd (Go's `crypto/tls`) accepts.
//!
//! Owns: what the TLS flags say, as the listeners will read it. Never: loads a certificate or
//! a key (the listeners do, when they start).

/// The TLS flags of one side (client: `--cert-file` ...; peer: `--peer-cert-file` ...). A file
/// flag given as an empty string is unset, as in etcd.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFlags {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    /// Ask every client for a certificate signed by `trusted_ca_file`.
    pub client_cert_auth: bool,
    pub trusted_ca_file: Option<String>,
    pub crl_file: Option<String>,
    /// A client certificate must carry this host name (`--client-cert-allowed-hostname`,
    /// `--peer-cert-allowed-hostname`).
    pub allowed_hostname: Option<String>,
    /// Peer only: a client certificate must carry this common name.
    pub allowed_cn: Option<String>,
    /// Generate a self-signed certificate when no cert and key files are given.
    pub auto_tls: bool,
    /// Peer only: do not check a peer certificate's SAN against its address.
    pub skip_client_san_verification: bool,
}

impl TlsFlags {
    /// Whether any certificate setting is present (files or generated).
    pub fn has_certificate(&self) -> bool {
        self.auto_tls || (self.cert_file.is_some() && self.key_file.is_some())
    }
}

/// A TLS cipher suite by Go's name and its IANA number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CipherSuite {
    pub name: &'static str,
    pub id: u16,
}

const fn suite(name: &'static str, id: u16) -> CipherSuite {
    CipherSuite { name, id }
}

/// Every name etcd 3.4.23 accepts in `--cipher-suites` (Go 1.19's `tls.CipherSuites` and
/// `tls.InsecureCipherSuites`, and the two short ChaCha20 names etcd adds).
const CIPHER_SUITES: &[CipherSuite] = &[
    suite("TLS_AES_128_GCM_SHA256", 0x1301),
    suite("TLS_AES_256_GCM_SHA384", 0x1302),
    suite("TLS_CHACHA20_POLY1305_SHA256", 0x1303),
    suite("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 0xc009),
    suite("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", 0xc00a),
    suite("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xc013),
    suite("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", 0xc014),
    suite("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xc02b),
    suite("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", 0xc02c),
    suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xc02f),
    suite("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", 0xc030),
    suite("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 0xcca8),
    suite("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", 0xcca9),
    suite("TLS_RSA_WITH_RC4_128_SHA", 0x0005),
    suite("TLS_RSA_WITH_3DES_EDE_CBC_SHA", 0x000a),
    suite("TLS_RSA_WITH_AES_128_CBC_SHA", 0x002f),
    suite("TLS_RSA_WITH_AES_256_CBC_SHA", 0x0035),
    suite("TLS_RSA_WITH_AES_128_CBC_SHA256", 0x003c),
    suite("TLS_RSA_WITH_AES_128_GCM_SHA256", 0x009c),
    suite("TLS_RSA_WITH_AES_256_GCM_SHA384", 0x009d),
    suite("TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", 0xc007),
    suite("TLS_ECDHE_RSA_WITH_RC4_128_SHA", 0xc011),
    suite("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", 0xc012),
    suite("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", 0xc023),
    suite("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", 0xc027),
    suite("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", 0xcca8),
    suite("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", 0xcca9),
];

/// etcd's `tlsutil.GetCipherSuites`: each name, in the order given, or etcd's message for the
/// first unknown one.
pub(super) fn cipher_suites(names: &[String]) -> Result<Vec<CipherSuite>, String> {
    names
        .iter()
        .map(|name| {
            CIPHER_SUITES
                .iter()
                .find(|s| s.name == name)
                .copied()
                .ok_or_else(|| format!("unexpected TLS cipher suite {name:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{err, parse, parse_env};

    #[test]
    fn cipher_suites_by_go_names() {
        let c = parse(&[
            "--cipher-suites",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256",
        ])
        .unwrap();
        assert_eq!(
            c.cipher_suites.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![0xc02f, 0x1301]
        );
        assert_eq!(
            err(&["--cipher-suites", "TLS_AES_128_GCM_SHA256,FOO"]),
            "unexpected TLS cipher suite \"FOO\""
        );
        assert!(parse(&[]).unwrap().cipher_suites.is_empty());
    }

    #[test]
    fn client_and_peer_flags_land_on_their_side() {
        let c = parse_env(
            &[
                "--cert-file",
                "c.pem",
                "--key-file=k.pem",
                "--client-cert-auth",
                "--trusted-ca-file",
                "ca.pem",
                "--client-crl-file",
                "crl.pem",
                "--client-cert-allowed-hostname",
                "client.example",
                "--peer-auto-tls",
                "--peer-cert-allowed-cn",
                "etcd-peer",
                "--experimental-peer-skip-client-san-verification",
            ],
            &[("ETCD_PEER_TRUSTED_CA_FILE", "peer-ca.pem")],
        )
        .unwrap();
        assert_eq!(
            c.client_tls,
            TlsFlags {
                cert_file: Some("c.pem".into()),
                key_file: Some("k.pem".into()),
                client_cert_auth: true,
                trusted_ca_file: Some("ca.pem".into()),
                crl_file: Some("crl.pem".into()),
                allowed_hostname: Some("client.example".into()),
                ..TlsFlags::default()
            }
        );
        assert!(c.client_tls.has_certificate());
        assert_eq!(
            c.peer_tls,
            TlsFlags {
                trusted_ca_file: Some("peer-ca.pem".into()),
                allowed_cn: Some("etcd-peer".into()),
                auto_tls: true,
                skip_client_san_verification: true,
                ..TlsFlags::default()
            }
        );
        assert!(!parse(&["--auto-tls=false"]).unwrap().client_tls.auto_tls);
    }
}
