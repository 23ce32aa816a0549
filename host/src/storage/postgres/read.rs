//! Reading rows: the streaming fetch under a call's limits, and the host's
//! reads that need no transaction of their own (one statement, one round
//! trip: no BEGIN READ ONLY and ROLLBACK around it).
use super::super::{MAX_QUERY_ROWS, StorageError};
use super::PgDb;
use super::tx::closed_by_server;
use super::values::{arguments, decode_row, value_bytes};
use crate::bindings::{Rows, SqlValue};
use futures_util::TryStreamExt;
use sqlx::{Column, Executor, PgConnection, Row, Statement};

impl PgDb {
    /// Runs one read-only host statement outside any transaction: PostgreSQL
    /// runs a lone statement atomically, on one snapshot.
    pub(in crate::storage) async fn read_once(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Rows, StorageError> {
        let sql = self.shared.host_sql.qualify(sql);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut conn = self.pool.acquire().await?;
            match fetch_rows(&mut conn, &sql, params, None).await {
                Ok(rows) => return Ok(rows),
                Err(e) => {
                    // The answer may be half read: never hand the session on.
                    conn.close_on_drop();
                    let retry = matches!(&e, StorageError::Postgres(e) if closed_by_server(e))
                        && attempts <= self.pool.options().get_max_connections();
                    if !retry {
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// Runs a query, streaming rows and stopping as soon as a limit is passed
/// (at most [`MAX_QUERY_ROWS`] rows; `max_bytes` of values when given).
pub(super) async fn fetch_rows(
    conn: &mut PgConnection,
    sql: &str,
    params: &[SqlValue],
    max_bytes: Option<usize>,
) -> Result<Rows, StorageError> {
    let args = arguments(params)?;
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    {
        let mut stream = sqlx::query_with(sql, args).fetch(&mut *conn);
        while let Some(row) = stream.try_next().await? {
            if rows.len() == MAX_QUERY_ROWS {
                return Err(StorageError::Setup(format!(
                    "query returned more than {MAX_QUERY_ROWS} rows; add a LIMIT"
                )));
            }
            if columns.is_empty() {
                columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
            }
            let values = decode_row(&row)?;
            bytes += values.iter().map(value_bytes).sum::<usize>();
            if let Some(max) = max_bytes.filter(|max| bytes > *max) {
                return Err(StorageError::Setup(format!(
                    "query result exceeds {max} bytes; select fewer rows or columns"
                )));
            }
            rows.push(values);
        }
    }
    if columns.is_empty() {
        // No rows: column names come from the statement sqlx just cached (no
        // round trip; `describe` would also query the catalog).
        let prepared = conn.prepare(sql).await?;
        columns = prepared
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
    }
    Ok(Rows { columns, rows })
}
