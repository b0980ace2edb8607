//! Stand-in for iceberg-rust's `iceberg_test_utils`, written for Serac's compat harness
//! (tests/compat/iceberg_rust.sh).
//!
//! The published `iceberg-catalog-rest` 0.9.0 ships `tests/rest_catalog_test.rs`, but that
//! file's helper crate is an unpublished path dev-dependency, which `cargo package` strips
//! from the published manifest: as published, the test target does not compile. This crate
//! provides exactly the four items the test file uses, with the behaviour the file relies on:
//! the catalog endpoint from `ICEBERG_TEST_REST_ENDPOINT`, names prefixed with the module
//! path, and a best-effort cleanup of a namespace's tables and the namespace itself.

use iceberg::{Catalog, NamespaceIdent};

/// Upstream installs a tracing subscriber here; the harness needs no logs.
pub fn set_up() {}

/// `a::b.c` -> `a__b_c`: a name usable as a namespace level.
pub fn normalize_test_name(s: impl ToString) -> String {
    s.to_string().replace("::", "__").replace('.', "_")
}

/// The REST catalog under test: `ICEBERG_TEST_REST_ENDPOINT`, else upstream's docker default.
pub fn get_rest_catalog_endpoint() -> String {
    std::env::var("ICEBERG_TEST_REST_ENDPOINT").unwrap_or_else(|_| "http://localhost:8181".to_string())
}

/// Drops the namespace's tables, then the namespace; errors are ignored (it may not exist).
pub async fn cleanup_namespace<C: Catalog>(catalog: &C, ns: &NamespaceIdent) {
    if let Ok(tables) = catalog.list_tables(ns).await {
        for table in tables {
            let _ = catalog.drop_table(&table).await;
        }
    }
    let _ = catalog.drop_namespace(ns).await;
}

/// `normalize_test_name_with_parts!("x", "y")` -> `<module path>_x_y`, normalized.
#[macro_export]
macro_rules! normalize_test_name_with_parts {
    ($($part:expr),+) => {
        $crate::normalize_test_name([module_path!(), $($part),+].join("_"))
    };
}
