//! The error of applying or serving a request: either an etcd error the client gets (the node
//! goes on), or a store failure that must stop the node.
//!
//! Owns the mapping from `mvcc::store::Error` to [`EtcdError`]. It must never turn a storage
//! failure (I/O, corruption, a poisoned store) into an etcd error: those are [`Error::Fatal`].
//!
//! Why a distinct type rather than a panic: the apply loop runs on the node's glommio core, and a
//! panic there may unwind only that thread while the gRPC threads keep serving from a store that
//! no longer advances. A `Fatal` value lets the node stop on purpose (stop applying, stop serving,
//! exit non-zero) and lets the API answer reads that hit one with a generic internal error instead
//! of an etcd error a client would act on. After a `Fatal` from `apply`, the `StoreWrite` may hold
//! an open request and partial changes: drop it without committing (the store then refuses new
//! writes, see `StoreWrite`'s `Drop`), and restart from the write-ahead log.

use crate::errors::EtcdError;
use keelson_storage::mvcc::store;
use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// The request fails with this etcd error. Nothing was changed.
    Etcd(EtcdError),
    /// The store failed; the node must stop applying. Never shown to a client as an etcd error.
    Fatal(store::Error),
}

impl Error {
    /// Maps a store error met while applying or reading: the revision errors are the client's,
    /// everything else is fatal.
    pub fn from_store(error: store::Error) -> Error {
        match error {
            store::Error::Compacted => Error::Etcd(EtcdError::Compacted),
            store::Error::FutureRev => Error::Etcd(EtcdError::FutureRev),
            other => Error::Fatal(other),
        }
    }

    /// The etcd error, if this is one.
    pub fn etcd(&self) -> Option<EtcdError> {
        match self {
            Error::Etcd(error) => Some(*error),
            Error::Fatal(_) => None,
        }
    }
}

impl From<EtcdError> for Error {
    fn from(error: EtcdError) -> Error {
        Error::Etcd(error)
    }
}

impl From<store::Error> for Error {
    fn from(error: store::Error) -> Error {
        Error::from_store(error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Etcd(error) => write!(f, "{error}"),
            Error::Fatal(error) => write!(f, "fatal store failure: {error}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_revision_errors_reach_the_client() {
        assert!(matches!(
            Error::from_store(store::Error::Compacted),
            Error::Etcd(EtcdError::Compacted)
        ));
        assert!(matches!(
            Error::from_store(store::Error::FutureRev),
            Error::Etcd(EtcdError::FutureRev)
        ));
        for fatal in [
            store::Error::Corrupt("bad record".into()),
            store::Error::Poisoned,
            store::Error::StaleView,
        ] {
            let error = Error::from_store(fatal);
            assert!(matches!(error, Error::Fatal(_)));
            assert_eq!(error.etcd(), None);
        }
    }
}
