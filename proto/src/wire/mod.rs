//! Hand-framed unary gRPC for the row payload methods (`Pull`, `Push`).
//!
//! The bytes on the wire are exactly what prost and tonic produce, so any gRPC client or
//! server interoperates; only the buffering differs. tonic's codec gathers every received
//! message into one buffer and encodes every sent message into another, which costs two
//! copies of each row payload per call. Here a message is sent as chunks that point at
//! the payload buffers themselves ([`MessageWriter`], [`ChunkBody`]) and read from the
//! HTTP/2 frames it arrived in ([`Chunks`], [`FieldReader`], [`read_unary`]).

mod body;
mod call;
mod chunks;
mod fields;
mod messages;
pub mod payload;
mod read;
mod writer;

pub use body::ChunkBody;
pub use call::{call, unary_call};
pub use chunks::Chunks;
pub use fields::{Field, FieldReader, FieldValue};
pub use messages::{
    pull_request, pull_response, push_request, push_request_once, push_response, PullRequestView,
    PullResponseView, PushOnce, PushRequestView,
};
pub use read::{read_unary, MessageReader, ReadError, Received};
pub use writer::MessageWriter;

/// Path of `strata.v1.Parameter/Pull`.
pub const PULL_PATH: &str = "/strata.v1.Parameter/Pull";
/// Path of `strata.v1.Parameter/Push`.
pub const PUSH_PATH: &str = "/strata.v1.Parameter/Push";
/// Path of `strata.v1.ShardControl/ImportRows` (a migration's rows, client-streamed).
pub const IMPORT_ROWS_PATH: &str = "/strata.v1.ShardControl/ImportRows";
/// Bytes of a gRPC message prefix: compressed flag and big-endian length.
pub const GRPC_PREFIX: usize = 5;

/// A malformed protobuf message or gRPC framing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The message ends inside a field.
    #[error("message truncated at byte {0}")]
    Truncated(usize),
    /// A varint longer than 10 bytes.
    #[error("invalid varint at byte {0}")]
    BadVarint(usize),
    /// Field number 0 or a wire type protobuf does not define (or groups).
    #[error("invalid field key {key} at byte {at}")]
    BadKey {
        /// The key's value.
        key: u64,
        /// Where it starts.
        at: usize,
    },
    /// A known field with another wire type than the schema's.
    #[error("field {field} of {message} has the wrong wire type")]
    WrongType {
        /// Message name.
        message: &'static str,
        /// Field number.
        field: u32,
    },
    /// Groups nested deeper than protobuf decoders accept.
    #[error("groups nested too deep")]
    TooDeep,
    /// A message longer than a gRPC length prefix can say (4 GiB).
    #[error("message of {0} bytes is too long for gRPC")]
    TooLong(usize),
    /// A string field that is not UTF-8.
    #[error("field {field} of {message} is not UTF-8")]
    NotUtf8 {
        /// Message name.
        message: &'static str,
        /// Field number.
        field: u32,
    },
}
