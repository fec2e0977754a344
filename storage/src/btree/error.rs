//! The one error type of the B+tree. Variants about the file carry its name so a message in a log
//! says which file to look at.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum Error {
    /// The device failed an operation.
    Io {
        file: String,
        op: &'static str,
        source: io::Error,
    },
    /// The file is not a valid B+tree file, or its structure is damaged.
    Corrupt {
        file: String,
        detail: String,
    },
    /// An earlier commit or sync failed part-way; write transactions, commits and syncs are
    /// refused until the file is reopened, because what reached the disk is unknown. Reads of the
    /// last published snapshot still work; reopening recovers the last durable commit.
    Poisoned {
        file: String,
        cause: String,
    },
    KeyTooLarge {
        len: usize,
        max: usize,
    },
    ValueTooLarge {
        len: usize,
        max: usize,
    },
    TreeNotFound {
        name: Vec<u8>,
    },
    /// `compact_into` needs an empty destination.
    DestinationNotEmpty {
        file: String,
    },
}

impl Error {
    pub(crate) fn io(file: &str, op: &'static str, source: io::Error) -> Error {
        Error::Io {
            file: file.to_string(),
            op,
            source,
        }
    }

    pub(crate) fn corrupt(file: &str, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            file: file.to_string(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { file, op, source } => write!(f, "{file}: I/O error during {op}: {source}"),
            Error::Corrupt { file, detail } => write!(f, "{file}: corrupt B+tree file: {detail}"),
            Error::Poisoned { file, cause } => write!(
                f,
                "{file}: writes refused after a failed write or sync ({cause}); reopen the \
                 database to recover the last durable commit"
            ),
            Error::KeyTooLarge { len, max } => {
                write!(f, "key of {len} bytes exceeds the limit of {max} bytes")
            }
            Error::ValueTooLarge { len, max } => {
                write!(f, "value of {len} bytes exceeds the limit of {max} bytes")
            }
            Error::TreeNotFound { name } => {
                write!(f, "tree \"{}\" does not exist", name.escape_ascii())
            }
            Error::DestinationNotEmpty { file } => {
                write!(f, "{file}: compaction destination is not empty")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_the_problem() {
        let e = Error::corrupt("/data/db", "bad magic");
        assert_eq!(e.to_string(), "/data/db: corrupt B+tree file: bad magic");
        let e = Error::io("/data/db", "sync", io::Error::other("EIO"));
        assert!(e.to_string().contains("/data/db") && e.to_string().contains("sync"));
        assert!(std::error::Error::source(&e).is_some());
        let e = Error::TreeNotFound {
            name: b"a\x01".to_vec(),
        };
        assert_eq!(e.to_string(), "tree \"a\\x01\" does not exist");
    }
}
