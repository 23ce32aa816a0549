use crate::bindings::exports::mercato::plugin::plugin as wit;
use crate::http::{Request, Response};
use crate::{Error, Event};

/// What a plugin tells the host about itself when it is loaded.
#[derive(Debug, Clone)]
pub struct Manifest {
    name: String,
    version: String,
    subscriptions: Vec<String>,
    migrations: Vec<(String, String)>,
    openapi: String,
    read_model: bool,
}

impl Manifest {
    /// A manifest for plugin `name` at `version` (usually `env!("CARGO_PKG_VERSION")`).
    pub fn new(name: &str, version: &str) -> Self {
        Manifest {
            name: name.to_owned(),
            version: version.to_owned(),
            subscriptions: Vec::new(),
            migrations: Vec::new(),
            openapi: String::new(),
            read_model: false,
        }
    }

    /// The same manifest at another `version`. A variant built from a plugin's
    /// source (the hot-swap tests' `orders-v2`, `audit-trap`…) ships that
    /// plugin's name, subscriptions, migrations and OpenAPI as they are.
    pub fn with_version(mut self, version: &str) -> Self {
        self.version = version.to_owned();
        self
    }

    /// Subscribes to events matching `pattern`: `source.EventType` or `source.*`.
    pub fn subscribe(mut self, pattern: &str) -> Self {
        self.subscriptions.push(pattern.to_owned());
        self
    }

    /// Adds a migration; `file` follows sqlx's `NNNN_description.sql` naming.
    pub fn migration(mut self, file: &str, sql: &str) -> Self {
        self.migrations.push((file.to_owned(), sql.to_owned()));
        self
    }

    /// Documents the plugin's routes: an OpenAPI 3.1 fragment (JSON text with
    /// `paths` relative to the mount point and optional `components.schemas`).
    /// The host merges every plugin's fragment into `GET /openapi.json`.
    pub fn openapi(mut self, json: &str) -> Self {
        self.openapi = json.to_owned();
        self
    }

    /// Declares the plugin a read model: its database holds only what its
    /// subscriptions' events build, so the host may rebuild it by replay
    /// (`mercato rebuild <name>`). A read model may not emit events.
    pub fn read_model(mut self) -> Self {
        self.read_model = true;
        self
    }

    #[doc(hidden)]
    pub fn into_wit(self) -> wit::Manifest {
        wit::Manifest {
            name: self.name,
            version: self.version,
            subscriptions: self.subscriptions,
            migrations: self.migrations,
            openapi: self.openapi,
            read_model: self.read_model,
        }
    }
}

/// A domain plugin. Implement it on a unit struct and export it with
/// [`export_plugin!`](crate::export_plugin).
pub trait Plugin {
    /// Name, version, subscriptions and migrations.
    fn manifest() -> Manifest;

    /// Answers an HTTP request under `/{plugin}/…`. The host commits the call's
    /// transaction for a 2xx status and rolls it back otherwise.
    fn handle_request(req: Request) -> Response {
        let _ = req;
        Response::error(404, "not_found", "this plugin serves no HTTP routes")
    }

    /// Handles one event from a subscription. `Ok` commits, `Err` rolls back and
    /// the host retries with backoff, then dead-letters the event.
    fn handle_event(event: Event) -> Result<(), Error> {
        let _ = event;
        Ok(())
    }
}
