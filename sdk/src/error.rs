//! Constructors for the contract's [`Error`] variant.

use crate::Error;

/// Result of plugin code: the error is the contract's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The caller's input was wrong; say which input and what was expected.
    ///
    /// ```
    /// let err = berth_sdk::Error::invalid_input("`count` must be at most 10, got 12");
    /// assert!(matches!(err, berth_sdk::Error::InvalidInput(_)));
    /// ```
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }

    /// The named thing does not exist.
    ///
    /// ```
    /// let err = berth_sdk::Error::not_found("template `redis`");
    /// assert_eq!(err.message(), "template `redis`");
    /// ```
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::NotFound(message.into())
    }

    /// A system the operation needs is absent.
    ///
    /// ```
    /// let err = berth_sdk::Error::unavailable("podman is not installed");
    /// assert!(matches!(err, berth_sdk::Error::Unavailable(_)));
    /// ```
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable(message.into())
    }

    /// The operation failed for another reason.
    ///
    /// ```
    /// let err = berth_sdk::Error::failed("container exited with 125");
    /// assert!(matches!(err, berth_sdk::Error::Failed(_)));
    /// ```
    pub fn failed(message: impl Into<String>) -> Self {
        Error::Failed(message.into())
    }

    /// The message carried by any variant.
    ///
    /// ```
    /// assert_eq!(berth_sdk::Error::failed("boom").message(), "boom");
    /// ```
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidInput(m)
            | Error::NotFound(m)
            | Error::Denied(m)
            | Error::Timeout(m)
            | Error::Unavailable(m)
            | Error::Failed(m) => m,
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::InvalidInput(format!("invalid JSON: {err}"))
    }
}
