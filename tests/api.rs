//! End-to-end tests of the REST catalog through HTTP, each on SQLite and on PostgreSQL.

mod common;

#[path = "api/auth.rs"]
mod auth;
#[path = "api/authz.rs"]
mod authz;
#[path = "api/commits.rs"]
mod commits;
#[path = "api/config.rs"]
mod config;
#[path = "api/deployment.rs"]
mod deployment;
#[path = "api/errors.rs"]
mod errors;
#[path = "api/events.rs"]
mod events;
#[path = "api/functions.rs"]
mod functions;
#[path = "api/hostile.rs"]
mod hostile;
#[path = "api/hostile_http.rs"]
mod hostile_http;
#[path = "api/idempotency.rs"]
mod idempotency;
#[path = "api/metrics.rs"]
mod metrics;
#[path = "api/namespaces.rs"]
mod namespaces;
#[path = "api/oidc.rs"]
mod oidc;
#[path = "api/operations.rs"]
mod operations;
#[path = "api/parity.rs"]
mod parity;
#[path = "api/profiles.rs"]
mod profiles;
#[path = "api/routes.rs"]
mod routes;
#[path = "api/s3.rs"]
mod s3;
#[path = "api/tables.rs"]
mod tables;
#[path = "api/transactions.rs"]
mod transactions;
#[path = "api/views.rs"]
mod views;
