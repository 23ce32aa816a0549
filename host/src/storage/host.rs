//! The guest-facing `storage` interface: statements run inside the call's transaction.
use crate::bindings::mercato::plugin::storage;
use crate::bindings::{GuestError, Rows, SqlValue};
use crate::runtime::CallState;

fn no_database() -> GuestError {
    GuestError::Internal("no database is available outside a request or event call".into())
}

/// Ends the call when the database stopped a statement at the call's deadline:
/// the guest must not get to carry on (and answer 200) after its time is up.
fn within_deadline<T>(
    state: &CallState,
    result: Result<T, GuestError>,
) -> wasmtime::Result<Result<T, GuestError>> {
    if result.is_err() && state.tx.as_ref().is_some_and(|tx| tx.deadline_exceeded()) {
        return Err(wasmtime::Error::msg(
            "a statement was stopped at the call's deadline",
        ));
    }
    Ok(result)
}

impl storage::Host for CallState {
    async fn execute(
        &mut self,
        sql: String,
        params: Vec<SqlValue>,
    ) -> wasmtime::Result<Result<u64, GuestError>> {
        let result = match self.tx.as_mut() {
            Some(tx) => tx.guest_execute(&sql, &params).await,
            None => Err(no_database()),
        };
        within_deadline(self, result)
    }

    async fn query(
        &mut self,
        sql: String,
        params: Vec<SqlValue>,
    ) -> wasmtime::Result<Result<Rows, GuestError>> {
        let result = match self.tx.as_mut() {
            Some(tx) => tx.guest_query(&sql, &params).await,
            None => Err(no_database()),
        };
        within_deadline(self, result)
    }
}
