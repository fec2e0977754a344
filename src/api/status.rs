//! The one place where Keelson's API errors become gRPC statuses: [`EtcdError`] keeps etcd's
//! code and exact message, [`MessageTooLarge`] keeps grpc-go's transport wording.
//!
//! This module must never invent messages: clients match etcd's statuses by their text, so every
//! message comes from `crate::errors`.

use crate::errors::{EtcdError, MessageTooLarge};
use crate::server;

/// What a client sees when serving its request hit a storage failure: a generic internal error,
/// never an etcd error it would act on (the node stops on such failures).
const INTERNAL_MESSAGE: &str = "keelson: internal storage error";

/// The status etcd sends for `error`: same code, same message, byte for byte.
pub fn etcd_status(error: EtcdError) -> tonic::Status {
    tonic::Status::new(
        tonic::Code::from_i32(error.code().as_i32()),
        error.message(),
    )
}

/// The status for an error of serving a read: etcd's for an etcd error, a generic internal error
/// for a storage failure (logged here, since the client is not told the cause).
pub fn server_status(error: server::Error) -> tonic::Status {
    match error {
        server::Error::Etcd(error) => etcd_status(error),
        server::Error::Fatal(cause) => {
            tracing::error!(error = %cause, "failed to serve a read");
            tonic::Status::internal(INTERNAL_MESSAGE)
        }
    }
}

/// The status grpc-go sends when a request message exceeds the server's receive limit.
pub fn too_large_status(error: MessageTooLarge) -> tonic::Status {
    tonic::Status::new(
        tonic::Code::from_i32(error.code().as_i32()),
        error.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages_survive_the_conversion() {
        for &error in EtcdError::ALL {
            let status = etcd_status(error);
            assert_eq!(status.code() as i32, error.code().as_i32(), "{error:?}");
            assert_eq!(status.message(), error.message());
        }
        let status = too_large_status(MessageTooLarge {
            size: 3_000_008,
            limit: 2_097_152,
        });
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "grpc: received message larger than max (3000008 vs. 2097152)"
        );
    }
}
