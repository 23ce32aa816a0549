//! Migrations run sandboxed: a plugin's migration is plugin code, so it runs as
//! the plugin's owner role (which owns the plugin's schema and nothing else),
//! statement by statement inside one transaction together with its bookkeeping
//! row, under a statement timeout. A refused or failing statement rolls back
//! everything of that migration.
//!
//! DO blocks and functions are allowed: they run with the owner role's rights
//! (no superuser, no CREATEROLE/CREATEDB, no TEMP, nothing outside its schema),
//! inside the migration's transaction (where COMMIT is refused by PostgreSQL),
//! before the host key is set and under the host's own timeout.
use super::super::{AppliedMigration, MigrationStep, StorageError};
use super::session::{self, HostKey};
use super::{PgDb, names::quote};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, Row};
use std::time::Duration;

/// How long one migration statement may run (PostgreSQL's statement_timeout
/// on the owner's connection; the host enforces it too, since a DO block can
/// change the setting).
pub const MIGRATION_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Past the statement timeout, how long the host waits before it terminates
/// the migration's backend itself.
const HOST_GRACE: Duration = Duration::from_secs(5);

/// The statements of a migration, split on top-level `;` (the tokenizer knows
/// strings, comments and `$$` bodies), comments kept, empty ones dropped.
pub(super) fn split(sql: &str) -> Result<Vec<String>, StorageError> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| StorageError::Refused(format!("could not split the migration: {e}")))?;
    let offsets = Offsets::new(sql);
    let mut statements = Vec::new();
    let mut start = 0;
    let mut has_code = false;
    for TokenWithSpan { token, span } in &tokens {
        match token {
            Token::SemiColon => {
                let end = offsets.byte(span.start);
                if has_code {
                    statements.push(sql[start..end].trim().to_owned());
                }
                start = end + 1;
                has_code = false;
            }
            Token::Whitespace(_) => {}
            _ => has_code = true,
        }
    }
    if has_code {
        statements.push(sql[start..].trim().to_owned());
    }
    Ok(statements)
}

/// Why a migration statement may not run, if it may not.
pub(super) fn refusal(statement: &str) -> Option<String> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, statement)
        .tokenize()
        .ok()?;
    let words: Vec<String> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .map_while(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        })
        .take(2)
        .collect();
    let first = words.first().map(String::as_str).unwrap_or_default();
    let second = words.get(1).map(String::as_str).unwrap_or_default();
    let what = if second.is_empty() || is_plain_word(second) {
        first.to_owned()
    } else {
        words.join(" ")
    };
    let why = match (first, second) {
        (
            "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE",
            _,
        )
        | ("PREPARE", "TRANSACTION") => {
            "transaction control is the host's: each migration runs in one transaction with its \
             bookkeeping, all or nothing"
        }
        ("SET", "CONSTRAINTS") => return None,
        ("SET" | "RESET", _) => {
            "a migration may not change its session (role, authorization, settings): the host \
             runs it as the plugin's owner role with a fixed search path and statement timeout"
        }
        ("COPY", _) => "COPY reads and writes files and client streams, which migrations cannot",
        ("LISTEN" | "UNLISTEN" | "NOTIFY", _) => "notifications are not available to migrations",
        ("DISCARD" | "LOAD", _) => "session and library commands are not available to migrations",
        _ => return None,
    };
    Some(format!("`{what}`: {why}"))
}

/// Not an SQL keyword (a table or channel name), so not part of what a statement is.
fn is_plain_word(word: &str) -> bool {
    sqlparser::keywords::ALL_KEYWORDS
        .binary_search(&word)
        .is_err()
}

/// Maps tokenizer locations (1-based line, column in characters) to byte offsets.
struct Offsets<'a> {
    sql: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Offsets<'a> {
    fn new(sql: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        Offsets { sql, line_starts }
    }

    fn byte(&self, at: Location) -> usize {
        let line_start = self.line_starts[(at.line as usize).saturating_sub(1)];
        let column = (at.column as usize).saturating_sub(1);
        line_start
            + self.sql[line_start..]
                .char_indices()
                .nth(column)
                .map_or(self.sql.len() - line_start, |(i, _)| i)
    }
}

impl PgDb {
    pub(super) async fn applied(&self) -> Result<Vec<AppliedMigration>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT version, checksum FROM {}._sqlx_migrations ORDER BY version",
            quote(&self.shared.names.host_schema)
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AppliedMigration {
                    version: r.try_get("version")?,
                    checksum: r.try_get("checksum")?,
                })
            })
            .collect()
    }

    pub(super) async fn apply(&self, step: &MigrationStep) -> Result<(), StorageError> {
        let statements = split(&step.sql)?;
        for (i, statement) in statements.iter().enumerate() {
            if let Some(why) = refusal(statement) {
                return Err(StorageError::Refused(format!(
                    "statement {} ({}): {why}",
                    i + 1,
                    excerpt(statement)
                )));
            }
        }
        let names = &self.shared.names;
        let timeout = step.deadline.min(self.migration_timeout);
        let options: PgConnectOptions = self
            .shared
            .admin
            .clone()
            .username(&names.owner)
            .password(&self.owner_password)
            .options([
                ("search_path", quote(&names.schema)),
                ("statement_timeout", timeout.as_millis().to_string()),
            ]);
        let mut conn = PgConnection::connect_with(&options).await?;
        let started = std::time::Instant::now();
        let pid: i32 = conn
            .fetch_one(sqlx::raw_sql(
                "BEGIN; SELECT pg_catalog.pg_backend_pid() AS pid",
            ))
            .await?
            .try_get("pid")?;
        for (i, statement) in statements.iter().enumerate() {
            let ran =
                tokio::time::timeout(timeout + HOST_GRACE, conn.execute(sqlx::raw_sql(statement)))
                    .await;
            let context = || format!("statement {} ({})", i + 1, excerpt(statement));
            match ran {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(statement_error(e, context())),
                Err(_) => {
                    // The session changed its own timeout; end it from outside.
                    session::terminate(&self.shared.admin_pool, pid).await;
                    return Err(StorageError::Refused(format!(
                        "{} ran longer than the migration statement timeout of {timeout:?}",
                        context()
                    )));
                }
            }
        }
        record(&mut conn, &self.shared, step, started.elapsed()).await?;
        conn.close().await?;
        self.grant_runtime().await
    }
}

/// Writes the bookkeeping row and commits. Runs after the plugin's statements:
/// the search path is pinned again (the migration may have changed it) before
/// the host key is set, and the key is cleared again before COMMIT, where the
/// plugin's deferred triggers could otherwise read it.
async fn record(
    conn: &mut PgConnection,
    shared: &super::Shared,
    step: &MigrationStep,
    elapsed: Duration,
) -> Result<(), StorageError> {
    sqlx::query(
        "SELECT pg_catalog.set_config('search_path', $1, true), \
         pg_catalog.set_config('mercato.host_key', $2, true)",
    )
    .bind(quote(&shared.names.schema))
    .bind(shared.key.expose())
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO {}._sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, $2, TRUE, $3, $4)",
        quote(&shared.names.host_schema)
    ))
    .bind(step.version)
    .bind(&step.description)
    .bind(&step.checksum)
    .bind(i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
    .execute(&mut *conn)
    .await?;
    conn.execute(sqlx::raw_sql(HostKey::CLEAR_AND_COMMIT))
        .await?;
    Ok(())
}

fn statement_error(e: sqlx::Error, context: String) -> StorageError {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("42501") => {
            StorageError::Refused(format!(
                "{context}: {} (a migration may only change its own plugin's schema)",
                db.message()
            ))
        }
        sqlx::Error::Database(db) => StorageError::Refused(format!("{context}: {}", db.message())),
        _ => StorageError::Postgres(e),
    }
}

/// The start of a statement, for messages.
fn excerpt(statement: &str) -> String {
    let line = statement
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("--"))
        .unwrap_or_default();
    let mut short: String = line.chars().take(60).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    format!("`{short}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_on_top_level_semicolons_only() {
        let sql = "-- leading comment; not a statement\n\
                   CREATE TABLE t (v TEXT DEFAULT 'a;b');\n\
                   CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\n\
                   BEGIN\n    RAISE EXCEPTION 'no; never';\nEND;\n$$;\n\
                   /* block; comment */ CREATE INDEX ié ON t (v);;\n\
                   -- trailing comment only\n";
        let statements = split(sql).unwrap();
        assert_eq!(statements.len(), 3, "{statements:#?}");
        assert!(
            statements[0].ends_with("DEFAULT 'a;b')"),
            "{}",
            statements[0]
        );
        assert!(statements[1].contains("RAISE EXCEPTION 'no; never';\nEND;\n$$"));
        assert!(statements[2].starts_with("/* block; comment */ CREATE INDEX ié"));
    }

    #[test]
    fn the_shop_migrations_split_into_their_statements() {
        let sql =
            include_str!("../../../../migrations/payments/0002_guard_financial_facts.postgres.sql");
        let statements = split(sql).unwrap();
        assert_eq!(statements.len(), 7, "{statements:#?}");
        assert!(statements.iter().all(|s| refusal(s).is_none()));
    }

    #[test]
    fn session_and_transaction_control_are_refused() {
        for sql in [
            "COMMIT",
            "commit",
            "BEGIN",
            "START TRANSACTION",
            "END",
            "ROLLBACK",
            "ABORT",
            "SAVEPOINT a",
            "RELEASE SAVEPOINT a",
            "PREPARE TRANSACTION 'x'",
            "SET ROLE postgres",
            "SET SESSION AUTHORIZATION postgres",
            "set local statement_timeout = 0",
            "RESET ALL",
            "COPY t FROM '/etc/passwd'",
            "LISTEN x",
            "NOTIFY x",
            "-- comment first\nCOMMIT",
        ] {
            assert!(refusal(sql).is_some(), "{sql}");
        }
        for sql in [
            "CREATE TABLE t (x int)",
            "SET CONSTRAINTS ALL DEFERRED",
            "DO $$ BEGIN END $$",
            "ALTER TABLE t ADD COLUMN y int",
        ] {
            assert_eq!(refusal(sql), None, "{sql}");
        }
    }
}
