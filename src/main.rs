use std::process::ExitCode;

use clap::Parser;
use serac::catalog::{Caller, Catalog, CatalogSettings};
use serac::config::{
    ApiKeyCommand, Cli, Command, FunctionCommand, GrantArgs, PrincipalCommand, RoleCommand,
    SecretsCommand, WarehouseCommand,
};
use serac::server::{Schema, Server, open_store, shutdown_signal};
use serac::storage::Storage;

/// mimalloc instead of glibc's allocator: a server whose requests allocate and free many
/// small objects on many threads spends a quarter of its CPU in glibc's malloc and free, and
/// glibc keeps freed memory in per-thread arenas, so RSS grows under load and stays there.
/// Measured in benches/README.md.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(not(feature = "system-allocator"))]
unsafe extern "C" {
    fn mi_version() -> std::ffi::c_int;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// mimalloc 3 returns freed memory to the system a second after it was freed, ten seconds
/// for its arenas (`purge_delay` 1000 ms): a burst of large commits then keeps its peak RSS
/// for that long. Serac purges after 10 ms (mimalloc 2's default), unless
/// `MIMALLOC_PURGE_DELAY` says otherwise.
#[cfg(not(feature = "system-allocator"))]
fn tune_allocator() {
    /// `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (include/mimalloc.h).
    const PURGE_DELAY: std::ffi::c_int = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: both are plain functions of the linked mimalloc; the option number is checked
    // against its major version first.
    unsafe {
        if (30_000..40_000).contains(&mi_version()) {
            mi_option_set(PURGE_DELAY, 10);
        }
    }
}

#[cfg(feature = "system-allocator")]
fn tune_allocator() {}

/// How long an idle thread of the blocking pool lives (see `main`).
const BLOCKING_THREAD_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(1);

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    if let Command::Healthcheck(args) = &cli.command {
        // No logging and no runtime: one blocking GET. Exit 1 when unhealthy (Docker reserves 2).
        return match serac::healthcheck::check(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("serac healthcheck: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let _logs = match serac::telemetry::init(cli.log_format, &cli.log_level) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("serac: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match serac::server::fair_runtime()
        // mimalloc returns a thread's freed pages to the system only when that thread
        // allocates again, so an idle blocking-pool thread (metadata file writes) keeps what
        // its last commits freed until it exits: 10 s by default, 1 s here. Measured: RSS
        // after 16 writers stop falls from 93 to 54 MiB within two seconds instead of ten.
        .thread_keep_alive(BLOCKING_THREAD_KEEP_ALIVE)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("serac: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serac: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    // Changes made from the command line are attributed to it in change events.
    let caller = Caller::command_line();
    match command {
        Command::Serve(args) => {
            let server = Server::build(&args).await?;
            server.run(shutdown_signal()).await
        }
        Command::Healthcheck(args) => serac::healthcheck::check(&args),
        Command::Migrate(database) => {
            open_store(
                &database,
                serac::metrics::DbMetrics::unregistered(),
                Schema::Migrate,
            )
            .await?;
            println!("migrations are up to date");
            Ok(())
        }
        Command::Warehouse(WarehouseCommand::Create {
            name,
            location,
            storage_file,
            secrets,
            database,
        }) => {
            let storage = storage_file
                .as_deref()
                .map(read_profile)
                .transpose()?
                .map(serac::storage::StorageProfile::parse)
                .transpose()?;
            let catalog = catalog_with_keys(&database, &secrets).await?;
            let warehouse = catalog
                .create_warehouse(&caller, &name, &location, storage)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "created warehouse '{}' at {}",
                warehouse.name, warehouse.location
            );
            Ok(())
        }
        Command::Function(FunctionCommand::Create {
            name,
            namespace,
            file,
            warehouse,
            database,
        }) => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let document: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
            let levels = iceberg::NamespaceIdent::from_vec(
                namespace.split('.').map(str::to_owned).collect(),
            )
            .map_err(|e| format!("--namespace: {e}"))?;
            let catalog = admin_catalog(&database).await?;
            let warehouse = catalog
                .warehouse(warehouse.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            let ident = iceberg::TableIdent::new(levels, name);
            let function = catalog
                .create_function(&caller, &warehouse, &ident, document)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "created function '{ident}' at {}",
                function.metadata_location
            );
            Ok(())
        }
        Command::Principal(command) => principal_command(command).await,
        Command::ApiKey(command) => api_key_command(command).await,
        Command::Role(command) => role_command(&caller, command).await,
        Command::Warehouse(WarehouseCommand::Update {
            name,
            storage_file,
            secrets,
            database,
        }) => {
            let profile = read_profile(&storage_file)?;
            let catalog = catalog_with_keys(&database, &secrets).await?;
            let warehouse = catalog
                .update_warehouse_storage(&caller, &name, profile)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "replaced the storage profile of warehouse '{}' (servers use it from their next request on)",
                warehouse.name
            );
            Ok(())
        }
        Command::Warehouse(WarehouseCommand::Delete { name, database }) => {
            admin_catalog(&database)
                .await?
                .delete_warehouse(&caller, &name)
                .await
                .map_err(|e| e.to_string())?;
            println!("deleted warehouse '{name}'");
            Ok(())
        }
        Command::Secrets(SecretsCommand::Rotate { secrets, database }) => {
            let catalog = catalog_with_keys(&database, &secrets).await?;
            let report = catalog
                .rotate_secrets(&caller)
                .await
                .map_err(|e| e.to_string())?;
            let how = match secrets.secrets_key_file {
                Some(_) => "encrypted with the current secrets key",
                None => "stored in plain text (no --secrets-key-file)",
            };
            for name in &report.rewritten {
                println!("{name}\trewritten: {how}");
            }
            for name in &report.current {
                println!("{name}\tunchanged: {how} already");
            }
            for (name, why) in &report.skipped {
                println!("{name}\tSKIPPED: {why}");
            }
            if report.skipped.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} warehouse(s) could not be rewritten (see above)",
                    report.skipped.len()
                ))
            }
        }
        Command::Warehouse(WarehouseCommand::List { database }) => {
            let catalog = admin_catalog(&database).await?;
            for w in catalog
                .list_warehouses(&caller)
                .await
                .map_err(|e| e.to_string())?
            {
                println!("{}\t{}", w.name, w.location);
            }
            Ok(())
        }
    }
}

async fn principal_command(command: PrincipalCommand) -> Result<(), String> {
    use serac::auth::principals;
    let metrics = serac::metrics::DbMetrics::unregistered();
    let show = |c: principals::Credentials| {
        println!("principal:     {}", c.name);
        println!("client id:     {}", c.client_id);
        println!("client secret: {}", c.client_secret);
        println!(
            "(the secret is shown only now; clients use credential=<client id>:<client secret>)"
        );
    };
    match command {
        PrincipalCommand::Create {
            name,
            admin,
            external: true,
            database,
        } => {
            let store = open_store(&database, metrics, Schema::Migrate).await?;
            principals::Principals::new(store.as_ref())
                .create_external(&name, admin)
                .await
                .map_err(|e| e.to_string())?;
            println!("principal:     {name}");
            println!(
                "(external: it signs in with tokens of the OpenID Connect provider whose \
                 --oidc-principal-claim is '{name}'; it has no secret)"
            );
        }
        PrincipalCommand::Create {
            name,
            admin,
            external: false,
            database,
        } => {
            let store = open_store(&database, metrics, Schema::Migrate).await?;
            show(
                principals::Principals::new(store.as_ref())
                    .create(&name, admin)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        PrincipalCommand::List { database } => {
            let store = open_store(&database, metrics, Schema::Migrate).await?;
            println!("name\tclient id\tadmin\texternal\tcreated");
            for p in store.list_principals().await.map_err(|e| e.to_string())? {
                let created = chrono::DateTime::from_timestamp_millis(p.created_at_ms)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{}\t{created}",
                    p.name, p.client_id, p.admin, p.external
                );
            }
        }
        PrincipalCommand::RotateSecret { name, database } => {
            let store = open_store(&database, metrics, Schema::Migrate).await?;
            show(
                principals::Principals::new(store.as_ref())
                    .rotate_secret(&name)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        PrincipalCommand::Delete { name, database } => {
            let store = open_store(&database, metrics, Schema::Migrate).await?;
            if !store
                .delete_principal(&name)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("principal '{name}' does not exist"));
            }
            println!("deleted principal '{name}'");
        }
    }
    Ok(())
}

async fn role_command(caller: &Caller, command: RoleCommand) -> Result<(), String> {
    use serac::store::GrantObject;
    let err = |e: serac::catalog::CatalogError| e.to_string();
    match command {
        RoleCommand::Create { name, database } => {
            admin_catalog(&database)
                .await?
                .create_role(caller, &name)
                .await
                .map_err(err)?;
            println!("created role '{name}'");
        }
        RoleCommand::Delete { name, database } => {
            admin_catalog(&database)
                .await?
                .delete_role(caller, &name)
                .await
                .map_err(err)?;
            println!("deleted role '{name}'");
        }
        RoleCommand::List { database } => {
            println!("role\tmembers");
            for role in admin_catalog(&database)
                .await?
                .list_roles(caller)
                .await
                .map_err(err)?
            {
                println!("{}\t{}", role.name, role.members.join(","));
            }
        }
        RoleCommand::AddMember {
            role,
            principal,
            database,
        } => set_member(caller, &database, &role, &principal, true).await?,
        RoleCommand::RemoveMember {
            role,
            principal,
            database,
        } => set_member(caller, &database, &role, &principal, false).await?,
        RoleCommand::Grant(args) => change_grant(caller, args, true).await?,
        RoleCommand::Revoke(args) => change_grant(caller, args, false).await?,
        RoleCommand::Grants { role, database } => {
            let catalog = admin_catalog(&database).await?;
            let warehouses = catalog.list_warehouses(caller).await.map_err(err)?;
            println!("privilege\twarehouse\tobject");
            for g in catalog.role_grants(caller, &role).await.map_err(err)? {
                let warehouse = warehouses
                    .iter()
                    .find(|w| w.id == g.warehouse_id)
                    .map_or(g.warehouse_id.as_str(), |w| w.name.as_str());
                let object = match &g.object {
                    GrantObject::Warehouse => "(the warehouse)".to_owned(),
                    GrantObject::Namespace(ns) => format!("namespace {}", ns.join(".")),
                    GrantObject::Object(kind, ns, name) => {
                        format!("{} {}.{name}", kind.as_str(), ns.join("."))
                    }
                };
                println!("{}\t{warehouse}\t{object}", g.privilege);
            }
        }
    }
    Ok(())
}

/// `serac role add-member|remove-member`.
async fn set_member(
    caller: &Caller,
    database: &serac::config::DatabaseArgs,
    role: &str,
    principal: &str,
    member: bool,
) -> Result<(), String> {
    admin_catalog(database)
        .await?
        .set_role_member(caller, role, principal, member)
        .await
        .map_err(|e| e.to_string())?;
    let is = if member { "is" } else { "is not" };
    println!("'{principal}' {is} a member of role '{role}'");
    Ok(())
}

/// `serac role grant|revoke`.
async fn change_grant(caller: &Caller, args: GrantArgs, grant: bool) -> Result<(), String> {
    use serac::store::{GrantObject, ObjectKind};
    let catalog = admin_catalog(&args.database).await?;
    let levels = |ns: &str| ns.split('.').map(str::to_owned).collect::<Vec<_>>();
    let object = match (&args.namespace, &args.table, &args.view) {
        (None, _, _) => GrantObject::Warehouse,
        (Some(ns), None, None) => GrantObject::Namespace(levels(ns)),
        (Some(ns), Some(t), _) => GrantObject::Object(ObjectKind::Table, levels(ns), t.clone()),
        (Some(ns), None, Some(v)) => GrantObject::Object(ObjectKind::View, levels(ns), v.clone()),
    };
    catalog
        .change_grant(
            caller,
            &args.role,
            &args.privilege,
            args.warehouse.as_deref(),
            object,
            grant,
        )
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{} '{}' {} role '{}'",
        if grant { "granted" } else { "revoked" },
        args.privilege,
        if grant { "to" } else { "from" },
        args.role
    );
    Ok(())
}

async fn api_key_command(command: ApiKeyCommand) -> Result<(), String> {
    use serac::auth::principals;
    let metrics = serac::metrics::DbMetrics::unregistered();
    let time = |ms: Option<i64>| {
        ms.and_then(chrono::DateTime::from_timestamp_millis)
            .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339())
    };
    match command {
        ApiKeyCommand::Create {
            principal,
            expires_in,
            database,
        } => {
            let store = open_store(&database, metrics, Schema::Migrate).await?;
            let key = principals::Principals::new(store.as_ref())
                .create_api_key(&principal, expires_in)
                .await
                .map_err(|e| e.to_string())?;
            println!("key id:  {}", key.id);
            println!("expires: {}", time(key.expires_at_ms));
            println!("key:     {}", key.key);
            println!(
                "(the key is shown only now; send it as Authorization: Bearer <key>, e.g. PyIceberg's token=)"
            );
        }
        ApiKeyCommand::List {
            principal,
            database,
        } => {
            let store = open_store(&database, metrics, Schema::Migrate).await?;
            println!("id\tprincipal\tcreated\texpires\tlast used");
            for k in store
                .list_api_keys(principal.as_deref())
                .await
                .map_err(|e| e.to_string())?
            {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    k.id,
                    k.principal_name,
                    time(Some(k.created_at_ms)),
                    time(k.expires_at_ms),
                    time(k.last_used_at_ms)
                );
            }
        }
        ApiKeyCommand::Revoke { id, database } => {
            let store = open_store(&database, metrics, Schema::Migrate).await?;
            if !store.delete_api_key(&id).await.map_err(|e| e.to_string())? {
                return Err(format!("API key '{id}' does not exist"));
            }
            println!("revoked API key '{id}'");
        }
    }
    Ok(())
}

/// A storage profile file, as JSON.
fn read_profile(path: &std::path::Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the storage profile {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("the storage profile {} is not JSON: {e}", path.display()))
}

/// [`admin_catalog`] sealing and opening stored secrets with the given keys.
async fn catalog_with_keys(
    database: &serac::config::DatabaseArgs,
    secrets: &serac::config::SecretsArgs,
) -> Result<Catalog, String> {
    catalog_on(
        database,
        Storage::default().with_secret_keys(secrets.keys()?),
    )
    .await
}

async fn admin_catalog(database: &serac::config::DatabaseArgs) -> Result<Catalog, String> {
    catalog_on(database, Storage::default()).await
}

async fn catalog_on(
    database: &serac::config::DatabaseArgs,
    storage: Storage,
) -> Result<Catalog, String> {
    let metrics = std::sync::Arc::new(serac::metrics::Metrics::new());
    let store = open_store(database, metrics.db.clone(), Schema::Migrate).await?;
    let settings = CatalogSettings {
        default_warehouse: database.default_warehouse.clone(),
        commit_retries: 0,
        idempotency_lifetime: std::time::Duration::from_secs(1800),
        table_cache_bytes: 1024 * 1024,
        scan_files_per_task: 1000,
        scan_plan_lifetime: std::time::Duration::from_secs(600),
        purge_lease: std::time::Duration::from_secs(60),
        event_retention: std::time::Duration::from_secs(7 * 86_400),
        event_poll_interval: std::time::Duration::from_secs(2),
        audit_retention: std::time::Duration::ZERO,
        limits: serac::catalog::Limits::default(),
        sign_batch_deletes: false,
    };
    Ok(Catalog::new(store, storage, settings, metrics))
}
