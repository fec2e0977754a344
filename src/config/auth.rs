//! The auth flags: `--auth-token` read as etcd's `decomposeOpts` and JWT options read it,
//! `--bcrypt-cost` with etcd's fallback, `--auth-token-ttl`.
//!
//! Owns: the token provider's settings as text and numbers. Never: reads a key file or signs
//! a token (the auth service does).

use std::time::Duration;

use super::go_syntax::parse_go_duration;

/// bcrypt's accepted costs; etcd falls back to [`BCRYPT_COST_DEFAULT`] outside them.
pub const BCRYPT_COST_MIN: u64 = 4;
pub const BCRYPT_COST_MAX: u64 = 31;
pub const BCRYPT_COST_DEFAULT: u64 = 10;
/// `--auth-token-ttl`, in seconds.
pub const AUTH_TOKEN_TTL_SECONDS_DEFAULT: u64 = 300;
/// A JWT's lifetime when `ttl=` is not given (etcd's `DefaultTTL`).
pub const JWT_TTL_DEFAULT: Duration = Duration::from_secs(5 * 60);

/// The JWT signing methods etcd's JWT library knows and can sign with.
const JWT_SIGN_METHODS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "ES512",
];

/// What etcd's server answers for any unusable `--auth-token`, at startup.
pub(super) const INVALID_AUTH_OPTIONS: &str = "auth: invalid auth options";

/// `--auth-token`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthToken {
    /// `''`: no tokens are issued (etcd's nop provider).
    Disabled,
    /// `simple` (the default): random tokens kept in memory, valid for `--auth-token-ttl`.
    Simple,
    /// `jwt,sign-method=...,pub-key=...,priv-key=...,ttl=...`.
    Jwt(JwtOptions),
}

/// The options of a JWT token provider. Key files are paths, read when auth starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtOptions {
    /// One of etcd's signing methods, e.g. `RS256`, `ES256`, `HS256`.
    pub sign_method: String,
    pub public_key_file: Option<String>,
    pub private_key_file: Option<String>,
    pub ttl: Duration,
}

impl AuthToken {
    /// Parses `--auth-token` as etcd's server does at startup: `type[,key=value...]`, each key
    /// once; a JWT needs a known signing method and the key its method signs with. Any failure
    /// is etcd's one message, [`INVALID_AUTH_OPTIONS`]; the detail etcd logs first is returned
    /// beside it.
    pub(super) fn parse(text: &str) -> Result<AuthToken, String> {
        let mut parts = text.split(',');
        let kind = parts.next().unwrap_or("");
        let mut options: Vec<(&str, &str)> = Vec::new();
        for part in parts {
            let pair: Vec<&str> = part.split('=').collect();
            let [key, value] = pair[..] else {
                return Err(format!("invalid token specific option: {text}"));
            };
            if options.iter().any(|(k, _)| *k == key) {
                return Err(format!(
                    "invalid token specific option, duplicated parameters ({key}): {text}"
                ));
            }
            options.push((key, value));
        }
        let option = |key: &str| {
            options
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
                .filter(|v| !v.is_empty())
        };
        match kind {
            "" => Ok(AuthToken::Disabled),
            "simple" => Ok(AuthToken::Simple),
            "jwt" => {
                let ttl = match option("ttl") {
                    None => JWT_TTL_DEFAULT,
                    Some(ttl) => match parse_go_duration(&ttl)? {
                        (false, d) => d,
                        (true, _) => return Err(format!("negative JWT ttl {ttl:?}")),
                    },
                };
                let sign_method = option("sign-method").unwrap_or_default();
                if !JWT_SIGN_METHODS.contains(&sign_method.as_str()) {
                    return Err("problem loading JWT options: auth: invalid auth signature \
                                method"
                        .to_string());
                }
                let jwt = JwtOptions {
                    public_key_file: option("pub-key"),
                    private_key_file: option("priv-key"),
                    sign_method,
                    ttl,
                };
                // HMAC signs and checks with the private key alone; the others need either.
                let has_key = if jwt.sign_method.starts_with("HS") {
                    jwt.private_key_file.is_some()
                } else {
                    jwt.private_key_file.is_some() || jwt.public_key_file.is_some()
                };
                if !has_key {
                    return Err("failed to load JWT key: auth: missing key data".to_string());
                }
                Ok(AuthToken::Jwt(jwt))
            }
            other => Err(format!("unknown token type: {other}")),
        }
    }
}

/// etcd's `NewAuthStore`: a cost outside bcrypt's range falls back to the default, with a
/// warning.
pub(super) fn bcrypt_cost(given: u64) -> (u64, Option<String>) {
    if (BCRYPT_COST_MIN..=BCRYPT_COST_MAX).contains(&given) {
        return (given, None);
    }
    let warning = format!(
        "Use default bcrypt-cost {BCRYPT_COST_DEFAULT} instead of the invalid value {given}"
    );
    (BCRYPT_COST_DEFAULT, Some(warning))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{err, parse};

    #[test]
    fn token_types_and_options() {
        assert_eq!(parse(&[]).unwrap().auth_token, AuthToken::Simple);
        assert_eq!(
            parse(&["--auth-token="]).unwrap().auth_token,
            AuthToken::Disabled
        );
        assert_eq!(
            parse(&[
                "--auth-token",
                "jwt,pub-key=pub.pem,priv-key=priv.pem,sign-method=RS256,ttl=10m"
            ])
            .unwrap()
            .auth_token,
            AuthToken::Jwt(JwtOptions {
                sign_method: "RS256".into(),
                public_key_file: Some("pub.pem".into()),
                private_key_file: Some("priv.pem".into()),
                ttl: Duration::from_secs(600),
            })
        );
        let jwt = AuthToken::parse("jwt,priv-key=k,sign-method=HS256").unwrap();
        assert!(matches!(jwt, AuthToken::Jwt(JwtOptions { ttl, .. }) if ttl == JWT_TTL_DEFAULT));
    }

    #[test]
    fn unusable_tokens_fail_with_etcds_message() {
        for bad in [
            "bad",
            "jwt",
            "jwt,sign-method=XX256,priv-key=k",
            "jwt,sign-method=RS256",
            "jwt,sign-method=HS256,pub-key=k",
            "jwt,sign-method=RS256,priv-key",
            "jwt,sign-method=RS256,priv-key=a,priv-key=b",
            "jwt,sign-method=RS256,priv-key=k,ttl=5",
        ] {
            assert!(AuthToken::parse(bad).is_err(), "{bad}");
            assert_eq!(err(&["--auth-token", bad]), INVALID_AUTH_OPTIONS, "{bad}");
        }
        assert_eq!(
            AuthToken::parse("bad").unwrap_err(),
            "unknown token type: bad"
        );
    }

    #[test]
    fn bcrypt_cost_falls_back_like_etcd() {
        assert_eq!(bcrypt_cost(12), (12, None));
        let (cost, warning) = bcrypt_cost(3);
        assert_eq!(cost, BCRYPT_COST_DEFAULT);
        assert_eq!(
            warning.unwrap(),
            "Use default bcrypt-cost 10 instead of the invalid value 3"
        );
        let c = parse(&["--bcrypt-cost", "40", "--auth-token-ttl", "60"]).unwrap();
        assert_eq!(c.bcrypt_cost, BCRYPT_COST_DEFAULT);
        assert_eq!(c.auth_token_ttl, Duration::from_secs(60));
        assert!(c.warnings.iter().any(|w| w.contains("bcrypt-cost")));
    }
}
