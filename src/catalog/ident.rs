//! Rules for names: namespace levels, table names, warehouse names.

use iceberg::{NamespaceIdent, TableIdent};

use super::{CatalogError, CatalogResult};

const MAX_NAME_LEN: usize = 255;
const MAX_NAMESPACE_DEPTH: usize = 16;

fn check_name(what: &str, name: &str) -> CatalogResult<()> {
    if name.is_empty() {
        return Err(CatalogError::BadRequest(format!(
            "{what} must not be empty"
        )));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(CatalogError::BadRequest(format!(
            "{what} '{}…' is longer than {MAX_NAME_LEN} bytes",
            name.chars().take(32).collect::<String>()
        )));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(CatalogError::BadRequest(format!(
            "{what} '{}' contains the control character U+{:04X}",
            name.escape_debug(),
            c as u32
        )));
    }
    Ok(())
}

/// A namespace must have at least one level; each level is a non-empty name without control
/// characters (the unit separator 0x1F joins levels in URLs).
pub fn validate_namespace(namespace: &NamespaceIdent) -> CatalogResult<()> {
    if namespace.is_empty() {
        return Err(CatalogError::BadRequest(
            "a namespace needs at least one level".into(),
        ));
    }
    if namespace.len() > MAX_NAMESPACE_DEPTH {
        return Err(CatalogError::BadRequest(format!(
            "namespace has {} levels; at most {MAX_NAMESPACE_DEPTH} are allowed",
            namespace.len()
        )));
    }
    for level in namespace.iter() {
        check_name("a namespace level", level)?;
        if level == "." || level == ".." {
            return Err(CatalogError::BadRequest(format!(
                "namespace level '{level}' is not allowed"
            )));
        }
    }
    Ok(())
}

/// Table names also become a directory name in the default table location.
pub fn validate_table_name(name: &str) -> CatalogResult<()> {
    check_name("a table name", name)?;
    if name.contains('/') || name == "." || name == ".." {
        return Err(CatalogError::BadRequest(format!(
            "table name '{name}' may not contain '/' or be '.' or '..'"
        )));
    }
    Ok(())
}

pub fn validate_table_ident(ident: &TableIdent) -> CatalogResult<()> {
    validate_namespace(ident.namespace())?;
    validate_table_name(ident.name())
}

/// Warehouse names are URL path segments (the prefix) and must not collide with routes.
/// A role name: 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.'.
pub fn validate_role_name(name: &str) -> CatalogResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(CatalogError::BadRequest(format!(
            "role name '{}' must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.'",
            name.escape_debug()
        )))
    }
}

pub fn validate_warehouse_name(name: &str) -> CatalogResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(CatalogError::BadRequest(format!(
            "warehouse name '{}' must be 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'",
            name.escape_debug()
        )));
    }
    const RESERVED: [&str; 7] = [
        "config",
        "namespaces",
        "tables",
        "views",
        "transactions",
        "oauth",
        "events",
    ];
    if RESERVED.contains(&name) {
        return Err(CatalogError::BadRequest(format!(
            "warehouse name '{name}' is reserved (it is a path segment of the REST API)"
        )));
    }
    Ok(())
}

/// The display form of a namespace in messages: levels joined by dots.
pub fn display_namespace(namespace: &[String]) -> String {
    namespace.join(".")
}
