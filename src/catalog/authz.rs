//! Authorization decisions: every catalog operation asks, on its first line, whether its
//! caller may do what it is about to do to every object it touches (objects named in request
//! bodies included: the destination of a rename, every table of a transaction).

use iceberg::{NamespaceIdent, TableIdent};

use super::{Caller, Catalog, CatalogError, CatalogResult, Warehouse};

/// What an operation does to its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Load, list, plan scans, read credentials.
    Read,
    /// Commit changes to a table or view, change a namespace's properties.
    Write,
    /// Create namespaces, tables, views and functions below.
    Create,
    /// Drop the object.
    Drop,
    /// Server-wide: warehouses, principals, the audit log.
    Admin,
}

impl Privilege {
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Create => "create",
            Self::Drop => "drop",
            Self::Admin => "admin",
        }
    }
}

/// What an operation touches.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Server,
    Warehouse(&'a Warehouse),
    Namespace(&'a Warehouse, &'a NamespaceIdent),
    Table(&'a Warehouse, &'a TableIdent),
    View(&'a Warehouse, &'a TableIdent),
    Function(&'a Warehouse, &'a TableIdent),
}

impl Catalog {
    /// Whether `caller` may do `privilege` to `target`; a refusal is an error to return as it
    /// is.
    pub(super) fn authorize(
        &self,
        caller: &Caller,
        privilege: Privilege,
        target: Target<'_>,
    ) -> CatalogResult<()> {
        if caller.principal.unrestricted {
            return Ok(());
        }
        Err(CatalogError::Forbidden(format!(
            "principal '{}' lacks the '{}' privilege on {}",
            caller.principal.name,
            privilege.name(),
            describe(target)
        )))
    }
}

fn describe(target: Target<'_>) -> String {
    use super::ident::display_namespace;
    match target {
        Target::Server => "the server".to_owned(),
        Target::Warehouse(w) => format!("warehouse '{}'", w.name),
        Target::Namespace(w, ns) => format!(
            "namespace '{}' of warehouse '{}'",
            display_namespace(ns),
            w.name
        ),
        Target::Table(w, ident) => object("table", w, ident),
        Target::View(w, ident) => object("view", w, ident),
        Target::Function(w, ident) => object("function", w, ident),
    }
}

fn object(noun: &str, warehouse: &Warehouse, ident: &TableIdent) -> String {
    format!(
        "{noun} '{}.{}' of warehouse '{}'",
        super::ident::display_namespace(ident.namespace()),
        ident.name(),
        warehouse.name
    )
}
