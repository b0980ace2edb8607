//! Authorization decisions: every catalog operation asks, on its first line, whether its
//! caller may do what it is about to do to every object it touches (objects named in request
//! bodies included: the destination of a rename, every table of a transaction).
//!
//! The rule: an unrestricted caller (authentication off, the command line) and an admin
//! principal may do anything. Any other principal needs the privilege from a grant held by
//! one of its roles on the object, on a namespace above it (nested namespaces included), or
//! on its warehouse; or it owns the object or a namespace above it (it created it: owners
//! hold every privilege). Server-wide operations (warehouses, principals, roles, the audit
//! log) need admin. Granting and revoking privileges on an object needs `manage-grants` on
//! it (or admin).
//!
//! What a principal may do is read from the database (admin flag, grants, owned objects) and
//! kept per replica until any of it changes anywhere (`store::AccessCache`), so a decision
//! costs no round trip, and a revocation, a deleted principal or a demoted admin holds for
//! the next request on every replica (whatever its tokens still say). A refusal is a 403 naming the missing privilege, whether or not the object exists,
//! so a refusal does not tell which objects exist. Lists show what the caller may read: all
//! children of a namespace it may read, else only the children it holds `read` on directly
//! (filtered in the list's one query); below a namespace that does not exist, such a
//! filtered list is empty too, not a 404.

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::{NamespaceIdent, TableIdent};

use super::ident::{display_namespace, validate_namespace, validate_table_name};
use super::{Caller, Catalog, CatalogError, CatalogResult, Warehouse};
use crate::store::{GrantObject, GrantRow, OWNER, ObjectKind, PrincipalAccess, StoreError};

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
    /// Grant and revoke privileges on the object (and below it) to roles.
    ManageGrants,
    /// Server-wide: warehouses, principals, roles and grants, the audit log.
    Admin,
}

/// The privileges a grant may give (admin is a property of a principal, not a grant).
pub const GRANTABLE: [Privilege; 5] = [
    Privilege::Read,
    Privilege::Write,
    Privilege::Create,
    Privilege::Drop,
    Privilege::ManageGrants,
];

impl Privilege {
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Create => "create",
            Self::Drop => "drop",
            Self::ManageGrants => "manage-grants",
            Self::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        GRANTABLE.into_iter().find(|p| p.name() == name)
    }

    /// Its bit in [`Access`]; admin has none (no grant gives it).
    fn bit(self) -> u8 {
        match self {
            Self::Read => 1,
            Self::Write => 2,
            Self::Create => 4,
            Self::Drop => 8,
            Self::ManageGrants => 16,
            Self::Admin => 0,
        }
    }

    /// The bits a stored grant gives: one privilege, or all of them (an owner's).
    fn bits_of(stored: &str) -> u8 {
        if stored == OWNER {
            return GRANTABLE.iter().fold(0, |bits, p| bits | p.bit());
        }
        Self::parse(stored).map_or(0, Self::bit)
    }
}

/// What one principal may do, indexed for decisions: per warehouse, the privileges granted on
/// it, on each namespace, and on each table and view. Built once per version of the
/// principal's access; a decision walks the target's namespace levels, not the grants.
#[derive(Debug, Default)]
pub struct Access {
    admin: bool,
    warehouses: HashMap<String, WarehouseAccess>,
}

#[derive(Debug, Default)]
struct WarehouseAccess {
    bits: u8,
    namespaces: HashMap<Vec<String>, NamespaceAccess>,
}

#[derive(Debug, Default)]
struct NamespaceAccess {
    bits: u8,
    tables: HashMap<String, u8>,
    views: HashMap<String, u8>,
}

impl Access {
    pub fn of(stored: &PrincipalAccess) -> Self {
        let mut access = Self {
            admin: stored.admin,
            warehouses: HashMap::new(),
        };
        for grant in &stored.grants {
            let bits = Privilege::bits_of(&grant.privilege);
            let warehouse = access
                .warehouses
                .entry(grant.warehouse_id.clone())
                .or_default();
            match &grant.object {
                GrantObject::Warehouse => warehouse.bits |= bits,
                GrantObject::Namespace(ns) => {
                    warehouse.namespaces.entry(ns.clone()).or_default().bits |= bits;
                }
                GrantObject::Object(kind, ns, name) => {
                    let namespace = warehouse.namespaces.entry(ns.clone()).or_default();
                    let objects = match kind {
                        ObjectKind::Table => &mut namespace.tables,
                        ObjectKind::View => &mut namespace.views,
                    };
                    *objects.entry(name.clone()).or_default() |= bits;
                }
            }
        }
        access
    }

    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Whether the principal holds `privilege` on an object of warehouse `warehouse_id`: the
    /// warehouse itself (`namespace` None), a namespace, or a table or view in a namespace
    /// (`object`; functions and other things of a namespace are reached through it).
    pub fn allows(
        &self,
        privilege: Privilege,
        warehouse_id: &str,
        namespace: Option<&[String]>,
        object: Option<(ObjectKind, &str)>,
    ) -> bool {
        if self.admin {
            return true;
        }
        let bit = privilege.bit();
        let Some(warehouse) = self.warehouses.get(warehouse_id) else {
            return false;
        };
        if warehouse.bits & bit != 0 {
            return true;
        }
        let Some(namespace) = namespace else {
            return false;
        };
        for depth in 1..=namespace.len() {
            let Some(level) = warehouse.namespaces.get(&namespace[..depth]) else {
                continue;
            };
            if level.bits & bit != 0 {
                return true;
            }
            if depth == namespace.len()
                && let Some((kind, name)) = object
            {
                let objects = match kind {
                    ObjectKind::Table => &level.tables,
                    ObjectKind::View => &level.views,
                };
                return objects.get(name).is_some_and(|bits| bits & bit != 0);
            }
        }
        false
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

    /// The table or view the target is, if it is one.
    fn object(&self) -> Option<(ObjectKind, &str)> {
        match self {
            Self::Table(_, t) => Some((ObjectKind::Table, t.name())),
            Self::View(_, t) => Some((ObjectKind::View, t.name())),
            _ => None,
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
        Err(CatalogError::Forbidden {
            privilege: privilege.name(),
            message: format!(
                "principal '{}' lacks the '{}' privilege on {}",
                caller.principal.name,
                privilege.name(),
                describe(target)
            ),
        })
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
        let Some(access) = self.access_of(caller).await? else {
            return Ok(false);
        };
        if access.is_admin() {
            return Ok(true);
        }
        let Some(warehouse) = target.warehouse() else {
            return Ok(false);
        };
        Ok(privilege != Privilege::Admin
            && access.allows(
                privilege,
                &warehouse.id,
                target.namespace(),
                target.object(),
            ))
    }

    /// What the caller's principal may do as the database says now (`None`: anonymous, or
    /// a principal deleted since its token was issued), looked up once per request.
    pub(super) async fn access_of(&self, caller: &Caller) -> CatalogResult<Option<Arc<Access>>> {
        let Some(id) = &caller.principal.id else {
            return Ok(None);
        };
        caller
            .access
            .get_or_try_init(|| async { self.access_by_id(id, caller.arrived).await })
            .await
            .cloned()
    }

    /// A principal's [`Access`], indexed once per version the store hands out.
    pub(super) async fn access_by_id(
        &self,
        id: &str,
        since: std::time::Instant,
    ) -> CatalogResult<Option<Arc<Access>>> {
        let Some(stored) = self.store.principal_access(id, since).await? else {
            return Ok(None);
        };
        if let Some((seen, access)) = self.access_index.get(id)
            && Arc::ptr_eq(&seen, &stored)
        {
            return Ok(Some(access));
        }
        let access = Arc::new(Access::of(&stored));
        self.access_index
            .insert(id.to_owned(), (stored, access.clone()));
        Ok(Some(access))
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
        // Admins may grant anything; others need manage-grants on the object (owners hold it).
        // A warehouse that does not exist is a 404 for admins only: others are refused as for
        // any warehouse, so a refusal does not tell which warehouses exist.
        let warehouse = match self.warehouse(warehouse).await {
            Ok(found) => found,
            Err(CatalogError::NoSuchWarehouse(msg)) => {
                if self
                    .allows(caller, Privilege::Admin, Target::Server)
                    .await?
                {
                    return Err(CatalogError::NoSuchWarehouse(msg));
                }
                return Err(CatalogError::Forbidden {
                    privilege: Privilege::ManageGrants.name(),
                    message: format!(
                        "principal '{}' lacks the 'manage-grants' privilege on the object of the grant",
                        caller.principal.name
                    ),
                });
            }
            Err(e) => return Err(e),
        };
        let warehouse = warehouse.as_ref();
        let object_ident = match &object {
            GrantObject::Object(_, ns, name) => Some(TableIdent::new(
                NamespaceIdent::from_vec(ns.clone())
                    .map_err(|e| CatalogError::BadRequest(format!("the grant's namespace: {e}")))?,
                name.clone(),
            )),
            _ => None,
        };
        let namespace_ident = match &object {
            GrantObject::Namespace(ns) => Some(
                NamespaceIdent::from_vec(ns.clone())
                    .map_err(|e| CatalogError::BadRequest(format!("the grant's namespace: {e}")))?,
            ),
            _ => None,
        };
        let target = match (&object, &object_ident, &namespace_ident) {
            (GrantObject::Object(ObjectKind::Table, ..), Some(ident), _) => {
                Target::Table(warehouse, ident)
            }
            (GrantObject::Object(ObjectKind::View, ..), Some(ident), _) => {
                Target::View(warehouse, ident)
            }
            (_, _, Some(ns)) => Target::Namespace(warehouse, ns),
            _ => Target::Warehouse(warehouse),
        };
        self.authorize(caller, Privilege::ManageGrants, target)
            .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(privilege: &str, object: GrantObject) -> GrantRow {
        GrantRow {
            role: "r".into(),
            privilege: privilege.into(),
            warehouse_id: "w1".into(),
            object,
        }
    }

    fn levels(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_index_decides_like_the_rule() {
        let access = Access::of(&PrincipalAccess {
            admin: false,
            grants: vec![
                grant("read", GrantObject::Namespace(levels(&["a"]))),
                grant(OWNER, GrantObject::Namespace(levels(&["b", "c"]))),
                grant(
                    "write",
                    GrantObject::Object(ObjectKind::Table, levels(&["d"]), "t".into()),
                ),
                grant("manage-grants", GrantObject::Warehouse),
            ],
        });
        let deep = levels(&["a", "x", "y"]);
        let table = Some((ObjectKind::Table, "t"));
        // A namespace grant reaches every level below it, and the tables there.
        assert!(access.allows(Privilege::Read, "w1", Some(&deep), table));
        assert!(!access.allows(Privilege::Write, "w1", Some(&deep), table));
        assert!(!access.allows(Privilege::Read, "w2", Some(&deep), table));
        assert!(!access.allows(Privilege::Read, "w1", Some(&levels(&["ab"])), None));
        // An owner holds every privilege below what it owns, not above.
        for privilege in GRANTABLE {
            assert!(access.allows(privilege, "w1", Some(&levels(&["b", "c", "e"])), None));
        }
        assert!(!access.allows(Privilege::Drop, "w1", Some(&levels(&["b"])), None));
        // An object grant: that table, not a view of the same name, nor the namespace.
        assert!(access.allows(Privilege::Write, "w1", Some(&levels(&["d"])), table));
        let view = Some((ObjectKind::View, "t"));
        assert!(!access.allows(Privilege::Write, "w1", Some(&levels(&["d"])), view));
        assert!(!access.allows(Privilege::Write, "w1", Some(&levels(&["d"])), None));
        assert!(!access.allows(Privilege::Write, "w1", Some(&levels(&["d", "e"])), table));
        // A warehouse grant reaches everything in it; admin is never granted.
        assert!(access.allows(Privilege::ManageGrants, "w1", None, None));
        assert!(!access.allows(Privilege::Admin, "w1", None, None));
        assert!(!access.is_admin());
    }
}
