//! Serac: an Apache Iceberg REST catalog server.
//!
//! Layers, top to bottom: [`api`] (HTTP, with [`auth`] turning tokens into principals) -> [`catalog`] (the rules of Iceberg) -> [`store`]
//! (SQL) and [`storage`] (object storage). Dependencies point down only.

pub mod api;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod healthcheck;
pub mod metrics;
pub mod server;
pub mod storage;
pub mod store;
pub mod telemetry;
