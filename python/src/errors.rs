//! [`ClientError`] as a Python exception: one class of `strata.errors` per kind of failure,
//! each carrying the gRPC code name (`"NOT_FOUND"`, ...) as `.code`.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyType;
use strata_client::ClientError;
use tonic::Code;

/// The `strata.errors` class and code name for `error`.
fn class_and_code(error: &ClientError) -> (&'static str, &'static str) {
    let code = error.status_code();
    match error {
        ClientError::Ambiguous { .. } => ("AmbiguousPush", code_name(code)),
        _ => (class_of_code(code), code_name(code)),
    }
}

/// The class for a status the server answered with.
fn class_of_code(code: Code) -> &'static str {
    match code {
        Code::NotFound => "NotFound",
        Code::InvalidArgument | Code::OutOfRange => "InvalidArgument",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::Unavailable => "Unavailable",
        _ => "StrataError",
    }
}

/// gRPC's canonical name of `code`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// An exception of class `class` of `strata.errors` with `message` and `code`.
pub fn raise(py: Python<'_>, class: &str, message: String, code: &str) -> PyErr {
    let class = py
        .import("strata.errors")
        .and_then(|module| module.getattr(class))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
    match class {
        Ok(class) => PyErr::from_type(class, (message, code.to_string())),
        Err(e) => PyRuntimeError::new_err(format!("{message} (strata.errors unavailable: {e})")),
    }
}

/// `error` as the matching `strata.errors` exception.
pub fn to_py(py: Python<'_>, error: ClientError) -> PyErr {
    let (class, code) = class_and_code(&error);
    raise(py, class, error.to_string(), code)
}

/// An `InvalidArgument` raised by this crate's own checks.
pub fn invalid(py: Python<'_>, message: String) -> PyErr {
    raise(py, "InvalidArgument", message, "INVALID_ARGUMENT")
}
