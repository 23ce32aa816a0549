//! One plugin call three ways, shared by the harness (scenario 1) and the
//! criterion bench (`benches/call.rs`): through the host's unit of work, through
//! the sandbox alone, and the same transaction done natively.
use anyhow::{Context, bail};
use mercato::app::App;
use mercato::bindings::{Domain, Request};
use mercato::plugin::{CallState, DomainWorld, Plugin};
use mercato::runtime::{Call, CallFuture, Queue, World};
use std::path::Path;
use std::sync::Arc;
use wasmtime::Store;

/// The no-op plugin's `POST /`: no body, so nothing but the host's work remains.
pub fn noop_request() -> Request {
    Request {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// The running `noop` plugin of `host`.
pub fn noop_plugin(host: &App) -> anyhow::Result<Arc<Plugin>> {
    host.registry()
        .get("noop")
        .context("the noop plugin is not loaded")
}

/// A full unit of work: write transaction, fresh instance, call, commit.
pub async fn host_call(host: &App, plugin: &Arc<Plugin>) -> anyhow::Result<()> {
    let answer = host
        .calls()
        .call_request(plugin, noop_request(), None, "bench", None)
        .await?;
    if answer.response.status != 200 {
        bail!("noop answered {}", answer.response.status);
    }
    Ok(())
}

/// Runs `f` on a fresh instance of `plugin` in the sandbox alone: no
/// transaction (storage calls would fail), no unit of work.
pub async fn in_sandbox<R, F>(host: &App, plugin: &Plugin, f: F) -> anyhow::Result<R>
where
    F: for<'a> FnOnce(&'a Domain, &'a mut Store<Call<CallState>>) -> CallFuture<'a, R>,
{
    // The state of a call without a transaction, as while loading.
    let state = DomainWorld::loading_state();
    let finished = host
        .sandbox()
        .call(
            &plugin.compiled.pre,
            state,
            plugin.limits,
            Queue::Unbounded,
            f,
        )
        .await
        .context("an unbounded queue always gets a slot")?;
    Ok(finished.result?)
}

/// The instance and the call only: no transaction (storage calls would fail).
pub async fn sandbox_call(host: &App, plugin: &Arc<Plugin>) -> anyhow::Result<()> {
    let request = noop_request();
    let response = in_sandbox(host, plugin, |instance, store| {
        Box::pin(async move {
            instance
                .mercato_plugin_plugin()
                .call_handle_request(store, &request)
                .await
        })
    })
    .await?;
    if response.status != 200 {
        bail!("noop answered {}", response.status);
    }
    Ok(())
}

/// The same empty write transaction without the host: a rusqlite connection
/// opened the way the host opens a plugin's database.
pub struct NativeTx {
    conn: rusqlite::Connection,
}

impl NativeTx {
    pub fn open(path: &Path) -> anyhow::Result<NativeTx> {
        let conn = rusqlite::Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(NativeTx { conn })
    }

    pub fn begin_commit(&self) -> anyhow::Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }
}
