//! Namespaces: a hierarchy whose parents must exist before their children, and which can be
//! dropped only when empty.

use std::collections::{BTreeSet, HashMap};

use iceberg::{Namespace, NamespaceIdent};

use super::authz::{Privilege, Target};
use super::ident::{display_namespace, validate_namespace};
use super::page::{PageRequest, Paged};
use super::{Caller, Catalog, CatalogError, CatalogResult, Warehouse};
use crate::store::{Change, NamespaceRow, PageQuery, StoreError};

/// How many times a property update is retried when another update raced it.
const PROPERTY_UPDATE_ATTEMPTS: u32 = 16;

/// What an update of namespace properties did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertiesChange {
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    pub missing: Vec<String>,
}

fn no_such_namespace(namespace: &[String]) -> CatalogError {
    CatalogError::NoSuchNamespace(format!(
        "namespace '{}' does not exist",
        display_namespace(namespace)
    ))
}

/// What creating `namespace` needs `create` on: its parent namespace, or the warehouse for a
/// top-level one. The parent is named by `levels` borrowed from `namespace`.
fn parent_target<'a>(warehouse: &'a Warehouse, parent: &'a Option<NamespaceIdent>) -> Target<'a> {
    match parent {
        Some(parent) => Target::Namespace(warehouse, parent),
        None => Target::Warehouse(warehouse),
    }
}

fn to_namespace(row: NamespaceRow) -> CatalogResult<Namespace> {
    let ident = NamespaceIdent::from_vec(row.levels)
        .map_err(|e| CatalogError::Internal(format!("stored namespace has no name: {e}")))?;
    Ok(Namespace::with_properties(ident, row.properties))
}

impl Catalog {
    pub async fn list_namespaces(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        parent: Option<&NamespaceIdent>,
        page: &PageRequest,
    ) -> CatalogResult<Paged<NamespaceIdent>> {
        // Lists are filtered, not refused: what the caller may read.
        let visible_to = self
            .list_filter(
                caller,
                match parent {
                    Some(parent) => Target::Namespace(warehouse, parent),
                    None => Target::Warehouse(warehouse),
                },
            )
            .await?;
        let page = page.parse()?;
        let parent_levels: &[String] = match parent {
            Some(parent) => {
                validate_namespace(parent)?;
                if self.store.namespace(&warehouse.id, parent).await?.is_none() {
                    // A caller that may not read the parent is shown nothing either way, so
                    // the answer does not tell whether the namespace exists.
                    if visible_to.is_some() {
                        return Ok(Paged::empty());
                    }
                    return Err(no_such_namespace(parent));
                }
                parent
            }
            None => &[],
        };
        let after = page.after.clone();
        let levels = self
            .store
            .list_namespaces(
                &warehouse.id,
                parent_levels,
                PageQuery {
                    after: after.as_deref(),
                    limit: page.fetch_limit(),
                },
                visible_to,
            )
            .await?;
        let idents = levels
            .into_iter()
            .map(|l| {
                NamespaceIdent::from_vec(l).map_err(|e| {
                    CatalogError::Internal(format!("stored namespace has no name: {e}"))
                })
            })
            .collect::<CatalogResult<Vec<_>>>()?;
        Ok(page.finish(idents, |n| n.join("\u{1F}")))
    }

    pub async fn create_namespace(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> CatalogResult<Namespace> {
        let parent = namespace.parent();
        self.authorize(caller, Privilege::Create, parent_target(warehouse, &parent))
            .await?;
        validate_namespace(namespace)?;
        self.check_namespace_properties(warehouse, &properties)?;
        match self
            .store
            .create_namespace(
                &warehouse.id,
                namespace,
                &properties,
                &Change::new(
                    caller.idempotency(),
                    vec![self.event(
                        caller,
                        "namespace.created",
                        warehouse,
                        namespace,
                        None,
                        serde_json::json!({ "properties": properties }),
                    )],
                )
                .owned_by(caller.owner()),
                &|ancestor| {
                    self.event(
                        caller,
                        "namespace.created",
                        warehouse,
                        ancestor,
                        None,
                        serde_json::json!({ "properties": {} }),
                    )
                },
            )
            .await
        {
            Ok(row) => to_namespace(row),
            Err(StoreError::AlreadyExists) => Err(CatalogError::AlreadyExists(format!(
                "namespace '{}' already exists",
                display_namespace(namespace)
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn load_namespace(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        namespace: &NamespaceIdent,
    ) -> CatalogResult<Namespace> {
        self.authorize(
            caller,
            Privilege::Read,
            Target::Namespace(warehouse, namespace),
        )
        .await?;
        validate_namespace(namespace)?;
        let row = self
            .store
            .namespace(&warehouse.id, namespace)
            .await?
            .ok_or_else(|| no_such_namespace(namespace))?;
        to_namespace(row)
    }

    pub async fn drop_namespace(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        namespace: &NamespaceIdent,
    ) -> CatalogResult<()> {
        self.authorize(
            caller,
            Privilege::Drop,
            Target::Namespace(warehouse, namespace),
        )
        .await?;
        validate_namespace(namespace)?;
        match self
            .store
            .drop_namespace(
                &warehouse.id,
                namespace,
                &Change::new(
                    caller.idempotency(),
                    vec![self.event(
                        caller,
                        "namespace.dropped",
                        warehouse,
                        namespace,
                        None,
                        serde_json::json!({}),
                    )],
                ),
            )
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(no_such_namespace(namespace)),
            Err(StoreError::StillReferenced) => Err(CatalogError::NamespaceNotEmpty(format!(
                "namespace '{}' is not empty: drop its tables and child namespaces first",
                display_namespace(namespace)
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets and removes properties in one step. A key may not be both set and removed.
    pub async fn update_namespace_properties(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        namespace: &NamespaceIdent,
        removals: Vec<String>,
        updates: HashMap<String, String>,
    ) -> CatalogResult<PropertiesChange> {
        self.authorize(
            caller,
            Privilege::Write,
            Target::Namespace(warehouse, namespace),
        )
        .await?;
        validate_namespace(namespace)?;
        let removals: BTreeSet<String> = removals.into_iter().collect();
        let both: Vec<&String> = removals
            .iter()
            .filter(|k| updates.contains_key(*k))
            .collect();
        if !both.is_empty() {
            return Err(CatalogError::Unprocessable(format!(
                "properties {both:?} are both set and removed in one request"
            )));
        }
        for _ in 0..PROPERTY_UPDATE_ATTEMPTS {
            let row = self
                .store
                .namespace(&warehouse.id, namespace)
                .await?
                .ok_or_else(|| no_such_namespace(namespace))?;
            let mut properties = row.properties.clone();
            let mut change = PropertiesChange {
                updated: updates.keys().cloned().collect(),
                removed: Vec::new(),
                missing: Vec::new(),
            };
            change.updated.sort();
            for key in &removals {
                if properties.remove(key).is_some() {
                    change.removed.push(key.clone());
                } else {
                    change.missing.push(key.clone());
                }
            }
            properties.extend(updates.clone());
            self.check_namespace_properties(warehouse, &properties)?;
            let event = self.event(
                caller,
                "namespace.updated",
                warehouse,
                namespace,
                None,
                serde_json::json!({ "updated": change.updated, "removed": change.removed }),
            );
            if self
                .store
                .swap_namespace_properties(
                    &row.id,
                    row.version,
                    &properties,
                    &Change::new(caller.idempotency(), vec![event]),
                )
                .await?
            {
                return Ok(change);
            }
        }
        Err(CatalogError::CommitFailed(format!(
            "properties of namespace '{}' kept changing under concurrent updates; try again",
            display_namespace(namespace)
        )))
    }
}

impl Catalog {
    /// A namespace's properties: at most the cap, and a `location` within the warehouse.
    fn check_namespace_properties(
        &self,
        warehouse: &Warehouse,
        properties: &HashMap<String, String>,
    ) -> CatalogResult<()> {
        super::locations::check_property_count(
            &self.settings.limits,
            properties.len(),
            "the namespace",
        )?;
        if let Some(location) = properties.get(super::tables::NAMESPACE_PROPERTY_LOCATION) {
            super::locations::confine(warehouse, location, "property 'location'")?;
        }
        Ok(())
    }
}
