//! `mercato serve`: its options, and running the host until a signal.
use crate::app::App;
use crate::config::{Config, LoadConfig};
use crate::deploy::Component;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Options for `mercato serve`. Each overrides the config file.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (see docs/operations.md).
    #[arg(long, short, env = "MERCATO_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "MERCATO_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for the SQLite databases [default: ./data].
    #[arg(long, env = "MERCATO_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Bearer token required by /admin routes (16+ characters). Without one,
    /// the host makes a random one in <data-dir>/admin-token (mode 0600) on
    /// first start and reuses it.
    #[arg(long, env = "MERCATO_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Store every plugin in PostgreSQL at this admin URL (a schema and role per plugin)
    /// instead of embedded SQLite.
    #[arg(long, env = "MERCATO_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Join the cluster of this name: hosts with the same name, PostgreSQL
    /// (--database-url) and NATS (--nats-url) share the shop's work.
    #[arg(long, env = "MERCATO_CLUSTER", requires = "nats_url")]
    cluster: Option<String>,
    /// NATS server with JetStream the cluster's hosts talk through.
    #[arg(long, env = "MERCATO_NATS_URL", requires = "cluster")]
    nats_url: Option<String>,
    /// How long a host's lease on a piece of work lasts [default: 3000].
    #[arg(long, requires = "cluster")]
    lease_ms: Option<u64>,
    /// Load an extra plugin component (repeatable).
    #[arg(long = "plugin", value_name = "FILE.wasm")]
    plugins: Vec<PathBuf>,
    /// Do not load the plugins embedded in the binary.
    #[arg(long)]
    no_embedded: bool,
    /// Development mode: redeploy a plugin whenever a `.wasm` file in DIR changes.
    #[arg(long, value_name = "DIR")]
    watch: Option<PathBuf>,
}

/// Runs `mercato serve` with these options until SIGTERM or ctrl-c.
pub(super) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let watch = args.watch.clone();
    serve(args.into_config()?, watch).await
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        if let Some(token) = self.admin_token {
            config.admin_token = Some(token);
        }
        if let Some(url) = self.database_url {
            config.storage.backend = crate::storage::BackendKind::Postgres;
            config.storage.url = Some(url);
        }
        if let (Some(name), Some(nats_url)) = (self.cluster, self.nats_url) {
            config.cluster = Some(crate::cluster::ClusterConfig {
                name,
                nats_url,
                lease_ms: crate::cluster::DEFAULT_LEASE_MS,
            });
        }
        if let (Some(cluster), Some(lease_ms)) = (&mut config.cluster, self.lease_ms) {
            cluster.lease_ms = lease_ms;
        }
        config
            .load
            .extend(self.plugins.into_iter().map(|path| LoadConfig { path }));
        if self.no_embedded {
            config.embedded_plugins = false;
        }
        config.validate()?;
        Ok(config)
    }
}

async fn serve(mut config: Config, watch: Option<PathBuf>) -> anyhow::Result<()> {
    let mut components = if config.embedded_plugins {
        Component::embedded()
    } else {
        Vec::new()
    };
    for load in &config.load {
        let bytes = std::fs::read(&load.path)
            .map_err(|e| anyhow::anyhow!("reading plugin {}: {e}", load.path.display()))?;
        components.push(Component {
            origin: load.path.display().to_string(),
            name: None,
            bytes,
        });
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.listen))?;
    // The port actually bound: what the other hosts of a cluster are told.
    config.listen = listener.local_addr()?;
    let app = App::start(config, components).await?;
    tracing::info!(
        address = %listener.local_addr()?,
        plugins = ?app.registry().all().iter().map(|p| p.name.to_string()).collect::<Vec<_>>(),
        "mercato is serving"
    );
    if let Some(dir) = watch {
        tokio::spawn(crate::deploy::watch(app.deployer().clone(), dir));
    }
    crate::http::serve(app, listener, shutdown_signal()).await?;
    tracing::info!("mercato stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
