//! Authorization decisions: every catalog operation asks, on its first line, whether its
//! caller may do what it is about to do to every object it touches (objects named in request
//! bodies included: the destination of a rename, every table of a transaction).
//!
//! The rule: an unrestricted principal (authentication off, an admin, the command line) may
//! do anything. Any other principal needs the privilege from a grant held by one of its
//! roles on the object, on a namespace above it (nested namespaces included), or on its
//! warehouse. Server-wide operations (warehouses, principals, roles, the audit log) need
//! admin. A refusal is a 403 naming the missing privilege, whether or not the object exists,
//! so a refusal does not tell which objects exist. Lists show what the caller may read: all
//! children of a namespace it may read, else only the children it holds `read` on directly
//! (filtered in the list's one query); below a namespace that does not exist, such a
//! filtered list is empty too, not a 404.

use std::sync::Arc;

use iceberg::{NamespaceIdent, TableIdent};

use super::ident::{display_namespace, validate_namespace, validate_table_name};
use super::{Caller, Catalog, CatalogError, CatalogResult, Warehouse};
use crate::store::{GrantObject, GrantRow, ObjectKind, StoreError};

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
    /// Server-wide: warehouses, principals, roles and grants, the audit log.
    Admin,
}

/// The privileges a grant may give (admin is a property of a principal, not a grant).
pub const GRANTABLE: [Privilege; 4] = [
    Privilege::Read,
    Privilege::Write,
    Privilege::Create,
    Privilege::Drop,
];

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

    pub fn parse(name: &str) -> Option<Self> {
        GRANTABLE.into_iter().find(|p| p.name() == name)
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

impl Target<'_> {
    fn warehouse(&self) -> Option<&Warehouse> {
        match self {
            Self::Server => None,
            Self::Warehouse(w)
            | Self::Namespace(w, _)
            | Self::Table(w, _)
            | Self::View(w, _)
            | Self::Function(w, _) => Some(w),
        }
    }

    /// The namespace the target is in or is, if any.
    fn namespace(&self) -> Option<&[String]> {
        match self {
            Self::Server | Self::Warehouse(_) => None,
            Self::Namespace(_, ns) => Some(ns),
            Self::Table(_, t) | Self::View(_, t) | Self::Function(_, t) => Some(t.namespace()),
        }
    }

    /// Whether `grant` reaches this target.
    fn reached_by(&self, grant: &GrantRow) -> bool {
        let Some(warehouse) = self.warehouse() else {
            return false;
        };
        let object = match self {
            Self::Table(_, t) => Some((ObjectKind::Table, t.name())),
            Self::View(_, t) => Some((ObjectKind::View, t.name())),
            _ => None,
        };
        grant_reaches(grant, &warehouse.id, self.namespace(), object)
    }
}

/// Whether `grant` reaches an object of warehouse `warehouse_id`: the warehouse itself
/// (`namespace` None), a namespace, or something in a namespace (`object`: a table or view
/// by name; functions and other things of a namespace are reached through the namespace).
pub(super) fn grant_reaches(
    grant: &GrantRow,
    warehouse_id: &str,
    namespace: Option<&[String]>,
    object: Option<(ObjectKind, &str)>,
) -> bool {
    if grant.warehouse_id != warehouse_id {
        return false;
    }
    match &grant.object {
        GrantObject::Warehouse => true,
        GrantObject::Namespace(granted) => namespace.is_some_and(|ns| ns.starts_with(granted)),
        GrantObject::Object(kind, ns, name) => {
            object.is_some_and(|(k, n)| k == *kind && n == name)
                && namespace.is_some_and(|target| target == ns.as_slice())
        }
    }
}

impl Catalog {
    /// Whether `caller` may do `privilege` to `target`; a refusal is an error to return as it
    /// is.
    pub(super) async fn authorize(
        &self,
        caller: &Caller,
        privilege: Privilege,
        target: Target<'_>,
    ) -> CatalogResult<()> {
        if self.allows(caller, privilege, target).await? {
            return Ok(());
        }
        Err(CatalogError::Forbidden(format!(
            "principal '{}' lacks the '{}' privilege on {}",
            caller.principal.name,
            privilege.name(),
            describe(target)
        )))
    }

    /// [`Self::authorize`] as a yes or no.
    pub(super) async fn allows(
        &self,
        caller: &Caller,
        privilege: Privilege,
        target: Target<'_>,
    ) -> CatalogResult<bool> {
        if caller.principal.unrestricted {
            return Ok(true);
        }
        if privilege == Privilege::Admin {
            return Ok(false);
        }
        let grants = self.grants_of(caller).await?;
        Ok(grants
            .iter()
            .any(|g| g.privilege == privilege.name() && target.reached_by(g)))
    }

    /// The grants that reach the caller's principal, read once per request (and so current:
    /// a revocation holds for the next request on every replica).
    async fn grants_of(&self, caller: &Caller) -> CatalogResult<Arc<Vec<GrantRow>>> {
        let Some(id) = &caller.principal.id else {
            return Ok(Arc::default());
        };
        caller
            .grants
            .get_or_try_init(|| async {
                Ok::<_, CatalogError>(Arc::new(self.store.principal_grants(id).await?))
            })
            .await
            .cloned()
    }

    /// The principal id to filter a list by: `None` when the caller may read everything in
    /// `target` (or is unrestricted).
    pub(super) async fn list_filter<'c>(
        &self,
        caller: &'c Caller,
        target: Target<'_>,
    ) -> CatalogResult<Option<&'c str>> {
        if self.allows(caller, Privilege::Read, target).await? {
            return Ok(None);
        }
        // Without an id (anonymous) nothing is granted: filter by an id no role has.
        Ok(Some(caller.principal.id.as_deref().unwrap_or("")))
    }

    // --- roles and grants (admin) -------------------------------------------------------------

    /// For server-wide operations outside the catalog (principals): the caller must be admin.
    pub async fn authorize_admin(&self, caller: &Caller) -> CatalogResult<()> {
        self.authorize(caller, Privilege::Admin, Target::Server)
            .await
    }

    pub async fn create_role(&self, caller: &Caller, name: &str) -> CatalogResult<()> {
        self.authorize(caller, Privilege::Admin, Target::Server)
            .await?;
        super::ident::validate_role_name(name)?;
        match self
            .store
            .create_role(&uuid::Uuid::now_v7().to_string(), name)
            .await
        {
            Err(StoreError::AlreadyExists) => Err(CatalogError::AlreadyExists(format!(
                "role '{name}' already exists"
            ))),
            other => Ok(other?),
        }
    }

    pub async fn delete_role(&self, caller: &Caller, name: &str) -> CatalogResult<()> {
        self.authorize(caller, Privilege::Admin, Target::Server)
            .await?;
        if self.store.delete_role(name).await? {
            Ok(())
        } else {
            Err(no_such_role(name))
        }
    }

    pub async fn list_roles(&self, caller: &Caller) -> CatalogResult<Vec<crate::store::RoleRow>> {
        self.authorize(caller, Privilege::Admin, Target::Server)
            .await?;
        Ok(self.store.list_roles().await?)
    }

    /// Adds (`member`) or removes a principal to or from a role.
    pub async fn set_role_member(
        &self,
        caller: &Caller,
        role: &str,
        principal: &str,
        member: bool,
    ) -> CatalogResult<()> {
        self.authorize(caller, Privilege::Admin, Target::Server)
            .await?;
        match self.store.set_role_member(role, principal, member).await {
            Err(StoreError::MissingReference) => Err(CatalogError::NotFound(format!(
                "role '{role}' or principal '{principal}' does not exist"
            ))),
            other => {
                other?;
                Ok(())
            }
        }
    }

    /// Grants (`grant`) or revokes a privilege on an object of a warehouse (by name; `None`:
    /// the default one) to or from a role. The caller is authorized before the warehouse is
    /// looked up, so a refusal does not tell which warehouses exist.
    pub async fn change_grant(
        &self,
        caller: &Caller,
        role: &str,
        privilege: &str,
        warehouse: Option<&str>,
        object: GrantObject,
        grant: bool,
    ) -> CatalogResult<()> {
        self.authorize(caller, Privilege::Admin, Target::Server)
            .await?;
        let warehouse = self.warehouse(warehouse).await?;
        if Privilege::parse(privilege).is_none() {
            return Err(CatalogError::BadRequest(format!(
                "privilege '{}' is not one of {}",
                privilege.escape_debug(),
                GRANTABLE.map(Privilege::name).join(", ")
            )));
        }
        // Names as the catalog allows them, so that a grant or revocation on a name no
        // object can have is refused rather than stored or ignored.
        if let GrantObject::Namespace(levels) | GrantObject::Object(_, levels, _) = &object {
            let namespace = NamespaceIdent::from_vec(levels.clone()).map_err(|_| {
                CatalogError::BadRequest("the namespace of a grant has no level".into())
            })?;
            validate_namespace(&namespace)?;
        }
        if let GrantObject::Object(_, _, name) = &object {
            validate_table_name(name)?;
        }
        let row = GrantRow {
            role: role.to_owned(),
            privilege: privilege.to_owned(),
            warehouse_id: warehouse.id.clone(),
            object,
        };
        let done = if grant {
            self.store.grant(&row).await
        } else {
            self.store.revoke(&row).await
        };
        match done {
            Ok(_) => Ok(()),
            Err(StoreError::MissingReference) => Err(CatalogError::NotFound(format!(
                "role '{role}' or the object of the grant does not exist"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The grants of a role.
    pub async fn role_grants(&self, caller: &Caller, role: &str) -> CatalogResult<Vec<GrantRow>> {
        self.authorize(caller, Privilege::Admin, Target::Server)
            .await?;
        self.store
            .role_grants(role)
            .await?
            .ok_or_else(|| no_such_role(role))
    }
}

fn no_such_role(name: &str) -> CatalogError {
    CatalogError::NotFound(format!("role '{name}' does not exist"))
}

fn describe(target: Target<'_>) -> String {
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
        display_namespace(ident.namespace()),
        ident.name(),
        warehouse.name
    )
}
