//! The guest-facing `storage` interface: statements run inside the call's transaction.
use crate::bindings::mercato::plugin::storage;
use crate::bindings::{GuestError, Rows, SqlValue};
use crate::runtime::CallState;

fn no_database() -> GuestError {
    GuestError::Internal("no database is available outside a request or event call".into())
}

impl storage::Host for CallState {
    async fn execute(
        &mut self,
        sql: String,
        params: Vec<SqlValue>,
    ) -> wasmtime::Result<Result<u64, GuestError>> {
        Ok(match self.tx.as_mut() {
            Some(tx) => tx.guest_execute(&sql, &params).await,
            None => Err(no_database()),
        })
    }

    async fn query(
        &mut self,
        sql: String,
        params: Vec<SqlValue>,
    ) -> wasmtime::Result<Result<Rows, GuestError>> {
        Ok(match self.tx.as_mut() {
            Some(tx) => tx.guest_query(&sql, &params).await,
            None => Err(no_database()),
        })
    }
}
