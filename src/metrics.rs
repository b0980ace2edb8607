//! Prometheus metrics: one registry per server, exposed at `GET /metrics`. Recording is a
//! few atomic operations on the hot path; gauges that need a query are refreshed on scrape.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds, from 100 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How a commit ended.
#[derive(Debug, Clone, Copy)]
pub enum CommitOutcome {
    Committed,
    /// Lost a compare-and-set race and was retried inside the server.
    Retried,
    /// A requirement did not hold (409).
    Conflict,
    /// Any other failure (bad update, storage or database error).
    Failed,
}

/// What the store records: how long queries wait for a pooled connection and how long each
/// store operation takes.
#[derive(Debug, Clone)]
pub struct DbMetrics {
    pub acquire_wait: Histogram,
    pub query_duration: HistogramVec,
    pub events_published: IntCounter,
}

impl DbMetrics {
    /// Metrics that are recorded but exported nowhere (command-line tools).
    pub fn unregistered() -> Self {
        Self {
            acquire_wait: Histogram::with_opts(
                HistogramOpts::new(
                    "db_pool_acquire_wait_seconds",
                    "Time spent waiting for a database connection from the pool",
                )
                .buckets(BUCKETS.to_vec()),
            )
            .expect("valid histogram"),
            query_duration: HistogramVec::new(
                HistogramOpts::new(
                    "db_query_duration_seconds",
                    "Duration of database operations (a statement or a transaction) by operation",
                )
                .buckets(BUCKETS.to_vec()),
                &["operation"],
            )
            .expect("valid histogram"),
            events_published: IntCounter::new(
                "events_published_total",
                "Change events committed through this replica",
            )
            .expect("valid counter"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// The process collector under its standard, unprefixed names (`process_cpu_seconds_total`,
    /// `process_resident_memory_bytes`, ...), which stock dashboards and alerts expect.
    standard: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub http_in_flight: IntGauge,
    commits: IntCounterVec,
    pub commit_duration: Histogram,
    pub metadata_write_duration: Histogram,
    table_cache: IntCounterVec,
    pub db_pool_connections: IntGauge,
    pub db_pool_idle: IntGauge,
    pub entities: IntGaugeVec,
    pub metrics_reports: IntCounter,
    pub db: DbMetrics,
    pub events_delivered: IntCounter,
    pub feed_subscribers: IntGauge,
    pub audit_records: IntCounterVec,
    /// Files deleted by purges of dropped tables.
    pub purge_files_deleted: IntCounter,
    /// Purge attempts by result: done, failed (retried later).
    pub purges: IntCounterVec,
    /// Purge tasks waiting or running (refreshed on scrape).
    pub purge_tasks: IntGauge,
    pub draining: IntGauge,
    /// 1 when the catalog database answered the query made for the last scrape, else 0.
    pub database_up: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("serac".into()), None).expect("valid prefix");
        let histogram = |name: &str, help: &str| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()))
                .expect("valid histogram")
        };
        let metrics = Self {
            http_requests: IntCounterVec::new(
                Opts::new(
                    "http_requests_total",
                    "HTTP requests by route template, method and status",
                ),
                &["route", "method", "status"],
            )
            .expect("valid counter"),
            http_duration: HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "HTTP request duration by route template",
                )
                .buckets(BUCKETS.to_vec()),
                &["route"],
            )
            .expect("valid histogram"),
            http_in_flight: IntGauge::new("http_requests_in_flight", "HTTP requests being served")
                .expect("valid gauge"),
            commits: IntCounterVec::new(
                Opts::new(
                    "commits_total",
                    "Table commits by outcome: committed, retried, conflict, failed",
                ),
                &["outcome"],
            )
            .expect("valid counter"),
            commit_duration: histogram("commit_duration_seconds", "Duration of table commits"),
            metadata_write_duration: histogram(
                "metadata_write_duration_seconds",
                "Duration of metadata file writes",
            ),
            table_cache: IntCounterVec::new(
                Opts::new(
                    "table_cache_lookups_total",
                    "Load-table cache lookups by result: hit, miss",
                ),
                &["result"],
            )
            .expect("valid counter"),
            db_pool_connections: IntGauge::new("db_pool_connections", "Open database connections")
                .expect("valid gauge"),
            db_pool_idle: IntGauge::new("db_pool_idle_connections", "Idle database connections")
                .expect("valid gauge"),
            entities: IntGaugeVec::new(
                Opts::new(
                    "catalog_entities",
                    "Warehouses, namespaces, tables and views in the catalog",
                ),
                &["kind"],
            )
            .expect("valid gauge"),
            metrics_reports: IntCounter::new(
                "metrics_reports_total",
                "Scan and commit reports received from clients",
            )
            .expect("valid counter"),
            db: DbMetrics::unregistered(),
            events_delivered: IntCounter::new(
                "events_delivered_total",
                "Change events sent to change-feed subscribers of this replica",
            )
            .expect("valid counter"),
            feed_subscribers: IntGauge::new(
                "change_feed_subscribers",
                "Connected change-feed subscribers",
            )
            .expect("valid gauge"),
            audit_records: IntCounterVec::new(
                Opts::new(
                    "audit_records_total",
                    "Audit records by result: written, dropped (the database refused them)",
                ),
                &["result"],
            )
            .expect("valid counter"),
            purge_files_deleted: IntCounter::new(
                "purge_files_deleted_total",
                "Files deleted by purges of dropped tables",
            )
            .expect("valid counter"),
            purges: IntCounterVec::new(
                Opts::new(
                    "purges_total",
                    "Purge attempts of dropped tables by result: done, failed (retried later)",
                ),
                &["result"],
            )
            .expect("valid counter"),
            purge_tasks: IntGauge::new(
                "purge_tasks",
                "Purges of dropped tables waiting or running (all replicas)",
            )
            .expect("valid gauge"),
            draining: IntGauge::new("draining", "1 while the server drains before it stops")
                .expect("valid gauge"),
            database_up: IntGauge::new(
                "database_up",
                "1 when the catalog database answered the query made for this scrape, 0 when it did not",
            )
            .expect("valid gauge"),
            registry,
            standard: Registry::new(),
        };
        let build = IntGaugeVec::new(Opts::new("build_info", "Build information"), &["version"])
            .expect("valid gauge");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(metrics.http_requests.clone()),
            Box::new(metrics.http_duration.clone()),
            Box::new(metrics.http_in_flight.clone()),
            Box::new(metrics.commits.clone()),
            Box::new(metrics.commit_duration.clone()),
            Box::new(metrics.metadata_write_duration.clone()),
            Box::new(metrics.table_cache.clone()),
            Box::new(metrics.db_pool_connections.clone()),
            Box::new(metrics.db_pool_idle.clone()),
            Box::new(metrics.entities.clone()),
            Box::new(metrics.metrics_reports.clone()),
            Box::new(metrics.db.acquire_wait.clone()),
            Box::new(metrics.db.query_duration.clone()),
            Box::new(metrics.db.events_published.clone()),
            Box::new(metrics.events_delivered.clone()),
            Box::new(metrics.feed_subscribers.clone()),
            Box::new(metrics.audit_records.clone()),
            Box::new(metrics.purge_files_deleted.clone()),
            Box::new(metrics.purges.clone()),
            Box::new(metrics.purge_tasks.clone()),
            Box::new(metrics.draining.clone()),
            Box::new(metrics.database_up.clone()),
            Box::new(build),
            // Deprecated: `serac_process_*`, the same figures under the prefix; kept for one
            // release so that dashboards made for them keep working (README: Metrics).
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ];
        for collector in collectors {
            metrics
                .registry
                .register(collector)
                .expect("metric names are unique");
        }
        metrics
            .standard
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("metric names are unique");
        metrics
    }

    pub fn commit(&self, outcome: CommitOutcome) {
        let label = match outcome {
            CommitOutcome::Committed => "committed",
            CommitOutcome::Retried => "retried",
            CommitOutcome::Conflict => "conflict",
            CommitOutcome::Failed => "failed",
        };
        self.commits.with_label_values(&[label]).inc();
    }

    pub fn table_cache(&self, hit: bool) {
        self.table_cache
            .with_label_values(&[if hit { "hit" } else { "miss" }])
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let mut families = self.registry.gather();
        families.extend(self.standard.gather());
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}
