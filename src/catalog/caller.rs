//! Who is asking: every catalog operation takes a [`Caller`] first and starts with an
//! authorization decision about it (see `authz.rs`). The HTTP layer makes one per request
//! from what authentication found; the command line and background work make their own.

use std::sync::Arc;

use super::IdempotencyRecord;

/// The principal a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Its id in the database (`None`: anonymous, the server itself, the command line).
    pub id: Option<String>,
    /// The name shown in change events, audit rows and the access log.
    pub name: String,
    /// Whether every decision allows it without asking the database: authentication is off
    /// (`--auth none`), or the caller is the server itself or its command line. (An admin
    /// principal is not: its admin flag is read from the database, so demoting or deleting
    /// it holds at once, whatever its token says.)
    pub unrestricted: bool,
}

/// The principal of requests when authentication is off.
pub const ANONYMOUS: &str = "anonymous";

/// The principal of what the server does on its own.
pub const SERVER: &str = "serac";

/// The principal of changes made from the command line.
pub const COMMAND_LINE: &str = "serac-cli";

impl Principal {
    /// The principal of every request when authentication is off: allowed everything.
    pub fn anonymous() -> Arc<Self> {
        Arc::new(Self {
            id: None,
            name: ANONYMOUS.to_owned(),
            unrestricted: true,
        })
    }
}

/// One request's caller: its principal, its request id, and the idempotency record of a
/// mutation sent with an `Idempotency-Key` (written in the same transaction as the change).
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Arc<Principal>,
    pub request_id: Option<String>,
    /// When the request arrived: what it reads of access is at least that fresh.
    pub arrived: std::time::Instant,
    idempotency: Option<IdempotencyRecord>,
    /// What the principal may do, read at the first decision of the request.
    pub(super) access: Arc<tokio::sync::OnceCell<Option<Arc<super::authz::Access>>>>,
}

impl Caller {
    pub fn new(principal: Arc<Principal>, request_id: Option<String>) -> Self {
        Self {
            principal,
            request_id,
            arrived: std::time::Instant::now(),
            idempotency: None,
            access: Arc::default(),
        }
    }

    /// The server's own command line (`serac warehouse create`, ...): unrestricted.
    pub fn command_line() -> Self {
        Self::unrestricted(COMMAND_LINE)
    }

    /// The server itself, for what it does on its own at start (the default warehouse).
    pub fn server() -> Self {
        Self::unrestricted(SERVER)
    }

    fn unrestricted(name: &str) -> Self {
        Self::new(
            Arc::new(Principal {
                id: None,
                name: name.to_owned(),
                unrestricted: true,
            }),
            None,
        )
    }

    /// The same caller, its request having arrived at `arrived`.
    pub fn arrived_at(self, arrived: std::time::Instant) -> Self {
        Self { arrived, ..self }
    }

    /// The same caller carrying the idempotency record of the mutation it is about to make.
    pub fn with_idempotency(&self, record: Option<IdempotencyRecord>) -> Self {
        Self {
            idempotency: record,
            ..self.clone()
        }
    }

    pub fn idempotency(&self) -> Option<&IdempotencyRecord> {
        self.idempotency.as_ref()
    }

    /// The principal id that owns what this caller creates (none without authentication and
    /// from the command line).
    pub fn owner(&self) -> Option<&str> {
        self.principal.id.as_deref()
    }
}
