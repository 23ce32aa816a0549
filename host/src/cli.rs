//! The `mercato` command line.
use crate::config::{Config, LoadConfig};
use crate::host::{Component, Host};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Mercato: a commerce backend whose bounded contexts are sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "mercato", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the shop: load the plugins and serve HTTP.
    Serve(ServeArgs),
    /// Walk one order from product to refund against an in-process shop, printing each step.
    Demo {
        /// Keep the demo's databases here (default: a fresh temporary directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

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
    /// admin routes answer loopback clients only.
    #[arg(long, env = "MERCATO_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Store every plugin in PostgreSQL at this admin URL (a schema and role per plugin)
    /// instead of embedded SQLite.
    #[arg(long, env = "MERCATO_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Load an extra plugin component (repeatable).
    #[arg(long = "plugin", value_name = "FILE.wasm")]
    plugins: Vec<PathBuf>,
    /// Do not load the plugins embedded in the binary.
    #[arg(long)]
    no_embedded: bool,
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
            config.storage.backend = "postgres".into();
            config.storage.url = Some(url);
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

/// Parses the command line and runs it.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args.into_config()?).await,
        Command::Demo { data_dir } => crate::demo::run(data_dir).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
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
            bytes,
        });
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.listen))?;
    if config.admin_token.is_none() {
        tracing::warn!("no admin token configured: /admin routes answer loopback clients only");
    }
    let host = Host::start(config, components).await?;
    tracing::info!(
        address = %listener.local_addr()?,
        plugins = ?host.registry.all().iter().map(|p| p.name.to_string()).collect::<Vec<_>>(),
        "mercato is serving"
    );
    crate::http::serve(host, listener, shutdown_signal()).await?;
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
