//! Idempotency-Key: one request per key at a time, and a stored response that
//! answers every replay of the same request until it expires. The record is
//! written in the request's own transaction, so it exists exactly when the
//! request's effects do.
use super::{Answer, RequestFailure};
use crate::bindings::{Request, Response, SqlValue};
use crate::plugin::Slot;
use crate::storage::{StorageError, Tx, first_row};
use sha2::{Digest, Sha256};

/// Holds an in-flight key for a request and removes it when the request
/// ends, however it ends.
pub(super) struct KeyGuard<'a> {
    slot: &'a Slot,
    key: String,
}

impl<'a> KeyGuard<'a> {
    /// Claims `key` for a request of the plugin of `slot`; refused while
    /// another request with the same key runs (on any version of the plugin).
    pub(super) fn claim(slot: &'a Slot, key: &str) -> Result<Self, RequestFailure> {
        let mut keys = slot.inflight_keys.lock().expect("inflight keys poisoned");
        if !keys.insert(key.to_owned()) {
            return Err(RequestFailure::KeyInProgress);
        }
        Ok(KeyGuard {
            slot,
            key: key.to_owned(),
        })
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        self.slot
            .inflight_keys
            .lock()
            .expect("inflight keys poisoned")
            .remove(&self.key);
    }
}

/// Claims `key` for the rest of `tx` on every host sharing this database:
/// on PostgreSQL, a transaction-scoped advisory lock, so a second request
/// with the key on another host of a cluster is refused while the first
/// runs, and finds its stored answer once it committed. (On SQLite the
/// database has one host, whose [`KeyGuard`] covers it.)
pub(super) async fn claim_in_database(
    tx: &mut Tx,
    kind: crate::storage::BackendKind,
    plugin: &str,
    key: &str,
) -> Result<bool, StorageError> {
    if kind != crate::storage::BackendKind::Postgres {
        return Ok(true);
    }
    let rows = tx
        .host_query(
            "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS held",
            &[SqlValue::Text(format!(
                "mercato-idempotency:{plugin}:{key}"
            ))],
        )
        .await?;
    // PostgreSQL's booleans arrive as 0 or 1.
    match first_row(&rows) {
        Some(row) => Ok(row.int("held")? != 0),
        None => Err(StorageError::Setup(
            "the idempotency lock answered no row".into(),
        )),
    }
}

/// What identifies a request behind a key: method, path, query, body and
/// the caller's role, so a buyer who learns a merchant's key replays nothing
/// the merchant was answered. A JSON body counts by its value, not its
/// bytes: a retry that serialises the same object with its keys in another
/// order or other spacing is the same request.
pub(super) fn request_hash(req: &Request) -> String {
    let role = req
        .headers
        .iter()
        .find(|(name, _)| name == "x-mercato-role")
        .map_or("", |(_, value)| value.as_str());
    let mut h = Sha256::new();
    for part in [
        req.method.as_bytes(),
        req.path.as_bytes(),
        req.query.as_bytes(),
        role.as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    match serde_json::from_slice::<serde_json::Value>(&req.body) {
        Ok(value) => {
            h.update(b"json");
            canonical_json(&value, &mut h);
        }
        Err(_) => {
            h.update(b"raw");
            h.update(&req.body);
        }
    }
    hex::encode(h.finalize())
}

/// Feeds `value` to `h` with object keys sorted, whatever order the map
/// keeps them in.
fn canonical_json(value: &serde_json::Value, h: &mut Sha256) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            h.update(b"{");
            for key in keys {
                h.update(Value::String(key.clone()).to_string().as_bytes());
                h.update(b":");
                canonical_json(&map[key], h);
                h.update(b",");
            }
            h.update(b"}");
        }
        Value::Array(items) => {
            h.update(b"[");
            for item in items {
                canonical_json(item, h);
                h.update(b",");
            }
            h.update(b"]");
        }
        scalar => h.update(scalar.to_string().as_bytes()),
    }
}

/// The stored response for `key`, unless it expired (created before
/// `cutoff`): an expired key runs as new even before the pruner removed it.
pub(super) async fn stored_response(
    tx: &mut Tx,
    key: &str,
    hash: &str,
    cutoff: &str,
) -> Result<Option<Result<Answer, RequestFailure>>, StorageError> {
    let rows = tx
        .host_query(
            "SELECT request_hash, status, headers, body FROM mercato_idempotency \
             WHERE key = $1 AND created_at >= $2",
            &[
                SqlValue::Text(key.to_owned()),
                SqlValue::Text(cutoff.to_owned()),
            ],
        )
        .await?;
    let Some(row) = first_row(&rows) else {
        return Ok(None);
    };
    if row.text("request_hash")? != hash {
        return Ok(Some(Err(RequestFailure::KeyReused)));
    }
    let headers: Vec<(String, String)> =
        serde_json::from_str(&row.text("headers")?).unwrap_or_default();
    let status = u16::try_from(row.int("status")?)
        .map_err(|_| StorageError::Setup("stored idempotent status is out of range".into()))?;
    Ok(Some(Ok(Answer {
        response: Response {
            status,
            headers,
            body: row.bytes("body")?,
            // A replay commits nothing; the first answer did, or not.
            commit: false,
        },
        replayed: true,
    })))
}

/// Records `response` as the answer to `key` inside the request's transaction.
pub(super) async fn store_response(
    tx: &mut Tx,
    key: &str,
    hash: &str,
    response: &Response,
) -> Result<(), StorageError> {
    // An expired record of the same key may not be pruned yet: replace it.
    tx.host_execute(
        "INSERT INTO mercato_idempotency (key, request_hash, status, headers, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO UPDATE SET \
         request_hash = excluded.request_hash, status = excluded.status, \
         headers = excluded.headers, body = excluded.body, created_at = excluded.created_at",
        &[
            SqlValue::Text(key.to_owned()),
            SqlValue::Text(hash.to_owned()),
            SqlValue::Integer(response.status.into()),
            SqlValue::Text(
                serde_json::to_string(&response.headers).unwrap_or_else(|_| "[]".into()),
            ),
            SqlValue::Blob(response.body.clone()),
            SqlValue::Text(crate::clock::now_rfc3339()),
        ],
    )
    .await?;
    Ok(())
}
