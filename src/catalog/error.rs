//! The catalog's errors: what went wrong in Iceberg terms. The api layer maps them to HTTP.

use crate::storage::StorageError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    BadRequest(String),
    /// The request is well-formed but contradicts itself (for example a property both set and
    /// removed).
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    NoSuchWarehouse(String),
    /// A management object (a role, a principal) that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The caller's principal lacks a privilege the operation needs (named for the audit log).
    #[error("{message}")]
    Forbidden {
        privilege: &'static str,
        message: String,
    },
    #[error("{0}")]
    NoSuchNamespace(String),
    #[error("{0}")]
    NoSuchTable(String),
    #[error("{0}")]
    NoSuchView(String),
    #[error("{0}")]
    NoSuchFunction(String),
    /// A scan plan or plan task that was cancelled, expired, or never issued.
    #[error("{0}")]
    NoSuchPlan(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    NamespaceNotEmpty(String),
    /// The request conflicts with the state of a management object (a warehouse that still
    /// holds namespaces, the default warehouse).
    #[error("{0}")]
    Conflict(String),
    /// A commit requirement does not hold, or the commit lost too many races.
    #[error("{0}")]
    CommitFailed(String),
    /// The idempotency key was recorded by an earlier (or concurrent) request.
    #[error("idempotency key already used")]
    IdempotencyKeyUsed,
    /// A change-feed cursor points before events that retention has deleted.
    #[error("{0}")]
    CursorExpired(String),
    /// The database did not confirm a commit: it may or may not have happened.
    #[error("{0}")]
    CommitStateUnknown(String),
    /// A table was dropped but some of its files could not be deleted.
    #[error("{0}")]
    PurgeIncomplete(String),
    /// A dependency (database, storage) is not reachable right now.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

pub type CatalogResult<T> = Result<T, CatalogError>;

impl CatalogError {
    /// Converts a store error that has no more specific meaning in the caller's context.
    pub(crate) fn from_store(err: StoreError) -> Self {
        match err {
            StoreError::IdempotencyKeyUsed => Self::IdempotencyKeyUsed,
            StoreError::Unavailable(msg) => {
                Self::Unavailable(format!("the catalog database is unavailable: {msg}"))
            }
            StoreError::OutcomeUnknown(msg) => Self::CommitStateUnknown(format!(
                "the catalog database did not confirm the change ({msg}); it may have been \
                 applied: reload before retrying"
            )),
            StoreError::AlreadyExists => Self::AlreadyExists("the entity already exists".into()),
            StoreError::LocationTaken => Self::AlreadyExists(
                "the location lies at, above or below the location of another table or view".into(),
            ),
            StoreError::MissingReference
            | StoreError::StillReferenced
            | StoreError::Database(_) => Self::Internal(format!("catalog database error: {err}")),
        }
    }

    pub(crate) fn from_storage(err: StorageError) -> Self {
        match err {
            StorageError::Unsupported(msg)
            | StorageError::Invalid(msg)
            | StorageError::Outside(msg)
            | StorageError::TooLarge(msg) => Self::BadRequest(msg),
            StorageError::Io(msg) => Self::Internal(format!("object storage failed: {msg}")),
        }
    }
}

impl From<StoreError> for CatalogError {
    fn from(err: StoreError) -> Self {
        Self::from_store(err)
    }
}

impl From<StorageError> for CatalogError {
    fn from(err: StorageError) -> Self {
        Self::from_storage(err)
    }
}
