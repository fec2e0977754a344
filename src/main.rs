//! The `keelson` binary: parses etcd's flags and ETCD_* variables, starts the node, serves the
//! client API on the gRPC threads until SIGTERM or SIGINT, then stops the node cleanly.
//!
//! This file only wires the parts together; it must never hold server logic of its own.

use std::path::Path;
use std::process::ExitCode;

use keelson::api::{self, maintenance::ETCD_API_VERSION, threads};
use keelson::compactor::{self, NodeTarget, TokioClock};
use keelson::config::Config;
use keelson::node::{self, NodeConfig};

/// mimalloc: see `keelson::allocator` for why, and for the setting `main` applies first.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for a failure after the flags were accepted (etcd exits 1 on fatal errors).
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    keelson::allocator::configure();
    let config =
        match Config::from_args_and_env(std::env::args().skip(1), |k| std::env::var(k).ok()) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("{e}");
                if e.shows_usage() {
                    eprintln!("{}", Config::help_text());
                }
                return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_FAILURE));
            }
        };
    if config.help {
        println!("{}", Config::help_text());
        return ExitCode::SUCCESS;
    }
    if config.version {
        println!("keelson Version: {}", env!("CARGO_PKG_VERSION"));
        println!("etcd API Version: {ETCD_API_VERSION}");
        return ExitCode::SUCCESS;
    }
    // etcd sets up its logger while checking the flags: an output it cannot open is a flag
    // error.
    if let Err(e) = keelson::log::init(&config) {
        eprintln!("error verifying flags, {e}. See 'etcd --help'.");
        return ExitCode::from(EXIT_FAILURE);
    }
    keelson::log::config_warnings(&config);
    let config = match with_absolute_dirs(config) {
        Ok(config) => config,
        Err(message) => {
            tracing::error!("{message}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The data and WAL dirs made absolute against the working directory at startup, so nothing
/// later depends on the current directory (the node's I/O layer needs absolute paths).
fn with_absolute_dirs(mut config: Config) -> Result<Config, String> {
    let absolute = |dir: &str| {
        std::path::absolute(dir)
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|e| format!("keelson: cannot resolve directory {dir}: {e}"))
    };
    config.data_dir = absolute(&config.data_dir)?;
    if let Some(wal_dir) = &config.wal_dir {
        config.wal_dir = Some(absolute(wal_dir)?);
    }
    Ok(config)
}

fn run(config: &Config) -> Result<(), String> {
    // etcd checks the cluster flags only when it bootstraps a member from an empty data dir; a
    // restart takes its membership from the data.
    let db = Path::new(&config.data_dir).join(keelson_storage::schema::DB_FILE);
    if !db.exists() {
        config.verify_bootstrap().map_err(|e| e.to_string())?;
    }
    keelson::metrics::configure(config.metrics);
    keelson::metrics::grpc::initialize();
    keelson::log::slow::set_threshold(config.warning_apply_duration);
    keelson::metrics::server()
        .quota_backend_bytes
        .set(i64::try_from(config.quota_backend_bytes.unwrap_or(0)).unwrap_or(i64::MAX));
    tracing::info!(
        keelson_version = env!("CARGO_PKG_VERSION"),
        etcd_api_version = ETCD_API_VERSION,
        name = %config.name,
        data_dir = %config.data_dir,
        wal_dir = %config.wal_dir.as_deref().unwrap_or(""),
        initial_cluster = ?urls_of(&config.initial_advertise_peer_urls),
        listen_client_urls = ?urls_of(&config.listen_client_urls),
        advertise_client_urls = ?urls_of(&config.advertise_client_urls),
        listen_metrics_urls = ?urls_of(&config.listen_metrics_urls),
        quota_size_bytes = config.quota_backend_bytes.unwrap_or(0),
        "starting an etcd server"
    );
    let node_config = NodeConfig::from_config(config);
    let grpc_cores = threads::grpc_cores(&config.grpc_cores, node_config.node_core);
    let runtime = threads::grpc_runtime(&grpc_cores, config.busy_poll)
        .map_err(|e| format!("keelson: starting the gRPC threads: {e}"))?;
    let listeners = {
        let _context = runtime.enter();
        api::bind(config).map_err(|e| e.to_string())?
    };
    let events = node::Peers::channel();
    let transport = keelson::peer::PeerTransport::new(runtime.handle().clone(), events.0.clone());
    let node = node::start_with_peers(node_config, node::Peers::new(Box::new(transport), events))
        .map_err(|e| format!("keelson: starting the node: {e}"))?;
    let status = node.status();
    tracing::info!(
        local_member_id = %format_args!("{:x}", status.member_id),
        cluster_id = %format_args!("{:x}", status.cluster_id),
        "starting local member"
    );
    tracing::info!(
        local_member_id = %format_args!("{:x}", status.member_id),
        initial_advertise_peer_urls = ?urls_of(&config.initial_advertise_peer_urls),
        listen_peer_urls = ?urls_of(&config.listen_peer_urls),
        advertise_client_urls = ?urls_of(&config.advertise_client_urls),
        listen_client_urls = ?urls_of(&config.listen_client_urls),
        listen_metrics_urls = ?urls_of(&config.listen_metrics_urls),
        "now serving peer/client/metrics"
    );
    for url in &config.listen_client_urls {
        tracing::info!(
            address = %format_args!("{}:{}", url.host, url.port),
            "serving client traffic insecurely; this is strongly discouraged!"
        );
    }
    // Ends with the runtime: it only proposes, so dropping it mid-compaction loses nothing.
    runtime.spawn(compactor::run(
        config.auto_compaction,
        TokioClock::new(),
        NodeTarget { node: node.clone() },
    ));
    let served = runtime.block_on(api::serve(
        node.clone(),
        config,
        listeners,
        shutdown_signal(),
    ));
    tracing::info!(
        name = %config.name,
        data_dir = %config.data_dir,
        advertise_client_urls = ?urls_of(&config.advertise_client_urls),
        "closing etcd server"
    );
    // Stop serving first, then the node: nothing is acknowledged after the node stopped.
    // Connections still open (idle clients, watch streams) are not waited for: the serve loop
    // has ended, so nothing they send is answered any more.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    node.stop();
    tracing::info!(name = %config.name, data_dir = %config.data_dir, "closed etcd server");
    served.map_err(|e| e.to_string())
}

/// How long the gRPC threads get to finish their tasks once serving stopped.
const RUNTIME_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// URLs as a list of their texts, for a log field.
fn urls_of(urls: &[keelson::config::Url]) -> Vec<String> {
    urls.iter().map(ToString::to_string).collect()
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    let signal = tokio::select! {
        _ = term.recv() => "terminated",
        _ = int.recv() => "interrupt",
    };
    tracing::info!(signal, "received signal; shutting down");
}
