//! The guest-facing `storage` interface: statements run inside the call's transaction.
use super::Tx;
use crate::bindings::mercato::plugin::storage;
use crate::bindings::{GuestError, Rows, SqlValue};
use tracing::Instrument;

/// The storage capability's per-call state: the call's transaction (`None`
/// while a plugin loads, when statements fail).
#[derive(Default)]
pub struct StorageCall {
    /// The transaction every statement of the call runs in.
    pub tx: Option<Tx>,
}

impl StorageCall {
    /// True when the database stopped a statement at the call's deadline.
    pub fn deadline_exceeded(&self) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.deadline_exceeded())
    }

    /// Runs one guest statement in the call's transaction. Ends the call
    /// when the database stopped the statement at the call's deadline: the
    /// guest must not get to carry on (and answer 200) after its time is up.
    async fn statement<T>(
        &mut self,
        operation: &'static str,
        sql: &str,
        run: impl AsyncFnOnce(&mut Tx) -> Result<T, GuestError>,
    ) -> Answer<T> {
        // A child of the call's span, made only when traces of statements
        // are asked for (`MERCATO_TRACE_STORAGE`): a debug span is disabled,
        // at no cost, otherwise.
        let span = tracing::debug_span!(
            "storage.statement",
            db.operation = operation,
            db.query.text = &sql[..sql.floor_char_boundary(MAX_TRACED_SQL)],
        );
        let result = match self.tx.as_mut() {
            Some(tx) => run(tx).instrument(span).await,
            None => Err(no_database()),
        };
        if result.is_err() && self.deadline_exceeded() {
            return Err(wasmtime::Error::msg(
                "a statement was stopped at the call's deadline",
            ));
        }
        Ok(result)
    }
}

/// A statement's text in its span is cut here (a statement may be 1 MiB).
const MAX_TRACED_SQL: usize = 1024;

fn no_database() -> GuestError {
    GuestError::Internal("no database is available outside a request or event call".into())
}

/// What a storage call answers: a guest error, or a trap that ends the call.
type Answer<T> = wasmtime::Result<Result<T, GuestError>>;

impl storage::Host for StorageCall {
    async fn execute(&mut self, sql: String, params: Vec<SqlValue>) -> Answer<u64> {
        self.statement("execute", &sql, async |tx| {
            tx.guest_execute(&sql, &params).await
        })
        .await
    }

    async fn query(&mut self, sql: String, params: Vec<SqlValue>) -> Answer<Rows> {
        self.statement("query", &sql, async |tx| {
            tx.guest_query(&sql, &params).await
        })
        .await
    }
}
