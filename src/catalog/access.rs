//! What a client gets with a table to reach its files: `config` entries and storage
//! credentials scoped to the table's location.
//!
//! Local (`file://`) warehouses hand out nothing. S3 warehouses hand out the endpoint, region
//! and addressing always, and keys as their profile's credential mode says: in `vended` mode
//! temporary ones from STS whose session policy covers this table only, read-only when the
//! caller may only read it. Credentials differ per caller, so they are computed per request
//! (from a cache in the storage layer), never kept with the table's cached response.

use iceberg::{NamespaceIdent, TableIdent};

use super::authz::Target;
use super::{Catalog, CatalogError, CatalogResult, Privilege, TableVersion, Warehouse};
use crate::storage::signer::candidate_locations;
use crate::storage::signer::{SignError, SignRequest, SignedRequest};
use crate::storage::{Access, ClientAccess, CredentialMode, Location, StorageProfile};
use crate::store::ObjectKind;

/// Signer properties that name the table on the legacy path: the warehouse (the URL prefix),
/// the namespace (levels joined by the unit separator 0x1F) and the table's name.
pub const SIGNER_PROPERTIES: [&str; 3] = ["prefix", "namespace", "table"];

/// A table's `config` entries and `storage-credentials`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TableAccess {
    /// Entries for the load result's `config` (the same keys as the credentials, for clients
    /// that do not read `storage-credentials`).
    pub config: Vec<(&'static str, String)>,
    /// At most one entry; never one without a secret.
    pub credentials: Vec<StorageCredential>,
}

/// Keys valid for the objects below `prefix`.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageCredential {
    pub prefix: String,
    pub config: Vec<(&'static str, String)>,
}

/// Entries with secret values (keys, tokens) shown redacted.
struct Redacted<'a>(&'a [(&'static str, String)]);

impl std::fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown = if k.contains("secret") || k.contains("token") || k.contains("key-id") {
                    "** redacted **"
                } else {
                    v.as_str()
                };
                (k, shown)
            }))
            .finish()
    }
}

impl std::fmt::Debug for TableAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableAccess")
            .field("config", &Redacted(&self.config))
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl std::fmt::Debug for StorageCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageCredential")
            .field("prefix", &self.prefix)
            .field("config", &Redacted(&self.config))
            .finish()
    }
}

impl TableAccess {
    fn from_client_access(access: ClientAccess) -> Self {
        let mut config = access.settings;
        let mut credentials = Vec::new();
        if let Some((prefix, keys)) = access.credentials
            && !keys.secret_access_key.expose().is_empty()
        {
            let mut entry = vec![
                ("s3.access-key-id", keys.access_key_id.clone()),
                (
                    "s3.secret-access-key",
                    keys.secret_access_key.expose().to_owned(),
                ),
            ];
            if let Some(token) = &keys.session_token {
                entry.push(("s3.session-token", token.expose().to_owned()));
            }
            if let Some(expires) = keys.expires_at_ms {
                entry.push(("s3.session-token-expires-at-ms", expires.to_string()));
            }
            config.extend(entry.iter().cloned());
            credentials.push(StorageCredential {
                prefix: prefix.to_string(),
                config: config.clone(),
            });
        }
        Self {
            config,
            credentials,
        }
    }
}

impl Catalog {
    /// Whether tables of this warehouse come with per-caller access (then a load response
    /// cannot be kept whole).
    pub fn hands_out_access(&self, warehouse: &Warehouse) -> bool {
        warehouse.storage.is_some()
    }

    /// Client settings of a whole warehouse, for `/v1/config`'s defaults: in
    /// `remote-signing` mode, that requests are signed, by whom (the catalog-wide legacy
    /// endpoint, which finds the table from the key) and, for PyIceberg, the file IO that
    /// can sign. Each loaded table's config says the same for its own requests.
    pub fn warehouse_client_defaults(&self, warehouse: &Warehouse) -> Vec<(&'static str, String)> {
        match &warehouse.storage {
            Some(StorageProfile::S3(profile))
                if profile.credential_mode == CredentialMode::RemoteSigning =>
            {
                vec![
                    ("s3.remote-signing-enabled", "true".to_owned()),
                    ("s3.signer", "S3V4RestSigner".to_owned()),
                    ("s3.signer.endpoint", LEGACY_SIGN_ENDPOINT.to_owned()),
                    ("py-io-impl", "pyiceberg.io.fsspec.FsspecFileIO".to_owned()),
                ]
            }
            _ => Vec::new(),
        }
    }

    /// What `caller` gets for a loaded table: read-write keys when it may commit to the
    /// table, read-only ones otherwise. (The caller may read it: the load checked that.)
    pub async fn table_access(
        &self,
        caller: &super::Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        version: &TableVersion,
    ) -> CatalogResult<TableAccess> {
        if !self.hands_out_access(warehouse) {
            return Ok(TableAccess::default());
        }
        let access = if self
            .allows(caller, Privilege::Write, Target::Table(warehouse, ident))
            .await?
        {
            Access::ReadWrite
        } else {
            Access::Read
        };
        let metadata = version.metadata()?;
        self.access_at(caller, warehouse, ident, metadata.location(), access)
            .await
    }

    /// What the creator of the table at `location` gets: read-write access.
    pub(super) async fn creator_access(
        &self,
        caller: &super::Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        location: &Location,
    ) -> CatalogResult<TableAccess> {
        self.access_at(
            caller,
            warehouse,
            ident,
            &location.to_string(),
            Access::ReadWrite,
        )
        .await
    }

    /// Access to the table at `location`, with the warehouse's current profile.
    pub(super) async fn access_at(
        &self,
        caller: &super::Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        location: &str,
        access: Access,
    ) -> CatalogResult<TableAccess> {
        let io = self.io(caller.arrived, warehouse).await?;
        if !io.hands_out_access() {
            return Ok(TableAccess::default());
        }
        let location = Location::parse(location).map_err(|e| {
            CatalogError::Internal(format!("the table's location is unusable: {e}"))
        })?;
        let access = io.client_access(&location, access).await.map_err(|e| {
            // The store refused to hand out keys (STS down, a role that cannot be assumed):
            // the table is fine, its credentials are not available now.
            CatalogError::Unavailable(format!("storage credentials are not available: {e}"))
        })?;
        let mut access = TableAccess::from_client_access(access);
        if let Some(StorageProfile::S3(profile)) = io.profile()
            && profile.credential_mode == CredentialMode::RemoteSigning
        {
            // Relative to the catalog's URI, where clients send their signing requests. The
            // spec's spelling names the table's own endpoint. PyIceberg (and Java's signer
            // client before 1.11) read `s3.signer.endpoint`: it names the catalog-wide
            // legacy path, where the table is found from the key. PyIceberg installs one
            // signer on an S3 file system that fsspec shares between every table of the
            // process, so with a per-table endpoint the last table loaded would sign for
            // all of them, and Serac would refuse the others' requests.
            access
                .config
                .push(("s3.signer.endpoint", LEGACY_SIGN_ENDPOINT.to_owned()));
            access
                .config
                .push(("signer.endpoint", sign_endpoint(warehouse, ident)));
        }
        Ok(access)
    }

    /// Signs a client's S3 request for a table's objects: the caller must read the table,
    /// and write it for a request that writes; the request must stay inside the table.
    pub async fn sign_request(
        &self,
        caller: &super::Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        request: &SignRequest,
    ) -> CatalogResult<SignedRequest> {
        let version = self.load_table(caller, warehouse, ident).await?;
        let writes = crate::storage::signer::access_of(&request.method)
            .map_err(|e| CatalogError::BadRequest(e.to_string()))?
            == Access::ReadWrite;
        if !self.settings.sign_batch_deletes
            && crate::storage::signer::is_batch_delete_request(request)
        {
            return Err(CatalogError::Forbidden {
                privilege: "write",
                message:
                    "request not signed: this server signs no batch deletes (--sign-batch-deletes)"
                        .into(),
            });
        }
        if writes {
            self.authorize(caller, Privilege::Write, Target::Table(warehouse, ident))
                .await?;
        }
        let metadata = version.metadata()?;
        let location = Location::parse(metadata.location()).map_err(|e| {
            CatalogError::Internal(format!("the table's location is unusable: {e}"))
        })?;
        let access = if writes {
            Access::ReadWrite
        } else {
            Access::Read
        };
        self.io(caller.arrived, warehouse)
            .await?
            .sign(&location, access, request)
            .map_err(|e| match e {
                SignError::Refused(message) => CatalogError::Forbidden {
                    privilege: if writes { "write" } else { "read" },
                    message: format!("request not signed: {message}"),
                },
                SignError::Invalid(message) => CatalogError::BadRequest(message),
            })
    }
}

/// The legacy signing path (Java's and PyIceberg's default), relative to the catalog's URI.
pub const LEGACY_SIGN_ENDPOINT: &str = "v1/aws/s3/sign";

impl Catalog {
    /// Signs a client's S3 request sent to the legacy path (`POST /v1/aws/s3/sign`), which
    /// names no table: the table is the one the signer properties name
    /// ([`SIGNER_PROPERTIES`]), else the one whose location holds the request's key (listed
    /// prefix, first key of a batch delete). Then exactly [`Self::sign_request`]. A request
    /// that reaches into no table the caller may read is refused alike whether another
    /// table holds its key or none does.
    pub async fn sign_request_by_location(
        &self,
        caller: &super::Caller,
        request: &SignRequest,
    ) -> CatalogResult<SignedRequest> {
        let refused = || CatalogError::Forbidden {
            privilege: "read",
            message:
                "request not signed: it reaches into no table on which the caller holds 'read'"
                    .into(),
        };
        let (warehouse, ident) = match self.signer_properties_table(request)? {
            Some(named) => named,
            None => {
                let mut locations = Vec::new();
                for raw in candidate_locations(request) {
                    if let Ok(location) = Location::parse(&raw) {
                        locations
                            .extend(location.self_and_ancestors().iter().map(|l| l.to_string()));
                    }
                }
                let mut tables: Vec<_> = self
                    .store
                    .objects_at(&locations)
                    .await?
                    .into_iter()
                    .filter(|o| o.kind == ObjectKind::Table)
                    .collect();
                tables.dedup();
                let [table] = tables.as_slice() else {
                    return Err(refused());
                };
                let namespace =
                    NamespaceIdent::from_vec(table.namespace.clone()).map_err(|_| refused())?;
                (
                    table.warehouse.clone(),
                    TableIdent::new(namespace, table.name.clone()),
                )
            }
        };
        let warehouse = match self.warehouse(Some(&warehouse)).await {
            Ok(warehouse) => warehouse,
            Err(CatalogError::NoSuchWarehouse(_)) => return Err(refused()),
            Err(e) => return Err(e),
        };
        if !self
            .allows(caller, Privilege::Read, Target::Table(&warehouse, &ident))
            .await?
        {
            return Err(refused());
        }
        match self.sign_request(caller, &warehouse, &ident, request).await {
            Err(CatalogError::NoSuchTable(_) | CatalogError::NoSuchNamespace(_)) => Err(refused()),
            other => other,
        }
    }

    /// The table the signer properties name, if they name one.
    fn signer_properties_table(
        &self,
        request: &SignRequest,
    ) -> CatalogResult<Option<(String, TableIdent)>> {
        let values: Vec<Option<&String>> = SIGNER_PROPERTIES
            .iter()
            .map(|key| request.properties.get(*key))
            .collect();
        let [Some(prefix), Some(namespace), Some(table)] = values.as_slice() else {
            if values.iter().any(Option::is_some) {
                return Err(CatalogError::BadRequest(format!(
                    "the signer properties name a table with all of {SIGNER_PROPERTIES:?}, or none"
                )));
            }
            return Ok(None);
        };
        let levels: Vec<String> = namespace.split('\u{1F}').map(str::to_owned).collect();
        let namespace = NamespaceIdent::from_vec(levels).map_err(|e| {
            CatalogError::BadRequest(format!("the signer property 'namespace': {e}"))
        })?;
        Ok(Some((
            (*prefix).clone(),
            TableIdent::new(namespace, (*table).clone()),
        )))
    }
}

/// `v1/{warehouse}/namespaces/{namespace}/tables/{table}/sign`, each part percent-encoded
/// (namespace levels joined by the unit separator, as in every table path).
fn sign_endpoint(warehouse: &Warehouse, ident: &TableIdent) -> String {
    fn encode(raw: &str) -> String {
        raw.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }
    format!(
        "v1/{}/namespaces/{}/tables/{}/sign",
        encode(&warehouse.name),
        encode(&ident.namespace().join("\u{1F}")),
        encode(ident.name())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_forms_hide_keys_and_tokens() {
        let access = TableAccess {
            config: vec![
                ("s3.region", "us-east-1".into()),
                ("s3.secret-access-key", "the-secret".into()),
                ("s3.session-token", "the-token".into()),
            ],
            credentials: vec![StorageCredential {
                prefix: "s3://b/t".into(),
                config: vec![("s3.secret-access-key", "the-secret".into())],
            }],
        };
        let shown = format!("{access:?}");
        assert!(shown.contains("us-east-1"), "{shown}");
        assert!(
            !shown.contains("the-secret") && !shown.contains("the-token"),
            "{shown}"
        );
    }
}
