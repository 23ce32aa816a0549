//! Plugin SQL is judged before it reaches PostgreSQL.
//!
//! The plugin's role already has rights on its own schema only; this check
//! takes away what every PostgreSQL role may do by default but a plugin must
//! not: read the system catalogs and statistics views (which describe every
//! plugin's tables and sessions), call functions that act outside the plugin's
//! data (sleeping, advisory locks, settings, server files, signalling other
//! sessions, large objects, running SQL given as a string), and run anything but
//! one query or one INSERT, UPDATE or DELETE.
//!
//! The statement is parsed (sqlparser, PostgreSQL dialect), never matched as
//! text. Syntax the parser does not understand is refused rather than passed on.
use crate::bindings::GuestError;
use sqlparser::ast::{
    Expr, ObjectName, ObjectNamePart, Query, Select, SetExpr, Statement, TableFactor, Visit,
    Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Mutex;

/// Verdicts kept per SQL text; a plugin's statements are a small fixed set, so
/// the cache is simply emptied when it fills (hostile input cannot grow it).
const CACHE_LIMIT: usize = 1024;

/// Functions a plugin may not call, by prefix of their (unqualified) name.
const DENIED_PREFIXES: &[&str] = &[
    // pg_sleep, pg_advisory_*, pg_cancel/terminate_backend, pg_read_*, pg_ls_*,
    // pg_stat_*, pg_notify, pg_reload_conf, …
    "pg_",
    "dblink",
    "lo_",
    // Run SQL given as a string, out of this check's sight.
    "query_to_xml",
    "cursor_to_xml",
    "table_to_xml",
    "schema_to_xml",
    "database_to_xml",
    "crosstab",
    // Catalog lookups by name (to_regclass, to_regproc, …).
    "to_reg",
];

/// Functions a plugin may not call, by exact name.
const DENIED_NAMES: &[&str] = &[
    "set_config",
    "current_setting",
    // Both take SQL text to run.
    "ts_stat",
    "ts_rewrite",
    // Large-object I/O without the `lo_` prefix.
    "loread",
    "lowrite",
];

/// Types whose input looks names up in the catalogs (`'x.t'::regclass`).
const CATALOG_TYPES: &[&str] = &[
    "regclass",
    "regcollation",
    "regconfig",
    "regdictionary",
    "regnamespace",
    "regoper",
    "regoperator",
    "regproc",
    "regprocedure",
    "regrole",
    "regtype",
];

/// Why a statement was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// The sandbox does not allow it.
    Denied(String),
    /// It is not one statement PostgreSQL-dialect SQL the checker understands.
    Invalid(String),
}

impl From<Refusal> for GuestError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Denied(m) => GuestError::Denied(m),
            Refusal::Invalid(m) => GuestError::Invalid(m),
        }
    }
}

/// Judges plugin statements, remembering verdicts.
#[derive(Default)]
pub(super) struct GuestSql {
    verdicts: Mutex<HashMap<String, Result<(), Refusal>>>,
}

impl GuestSql {
    /// `Ok` when `sql` may be sent to PostgreSQL on the plugin's behalf.
    pub(super) fn check(&self, sql: &str) -> Result<(), GuestError> {
        if let Some(verdict) = self.verdicts.lock().expect("verdicts poisoned").get(sql) {
            return verdict.clone().map_err(Into::into);
        }
        let verdict = judge(sql);
        let mut verdicts = self.verdicts.lock().expect("verdicts poisoned");
        if verdicts.len() >= CACHE_LIMIT {
            verdicts.clear();
        }
        verdicts.insert(sql.to_owned(), verdict.clone());
        verdict.map_err(Into::into)
    }
}

fn judge(sql: &str) -> Result<(), Refusal> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|e| Refusal::Invalid(format!("could not parse the statement: {e}")))?;
    check_tokens(&tokens)?;
    let leading = leading_keywords(&tokens);
    // A statement the parser cannot read is invalid, unless it plainly starts
    // as a kind plugins may not run at all (DO, CREATE FUNCTION, …).
    let starts_allowed = match tokens.iter().find(|t| !matches!(t, Token::Whitespace(_))) {
        Some(Token::Word(w)) => {
            w.keyword == Keyword::NoKeyword
                || matches!(
                    w.keyword,
                    Keyword::SELECT
                        | Keyword::WITH
                        | Keyword::VALUES
                        | Keyword::INSERT
                        | Keyword::UPDATE
                        | Keyword::DELETE
                )
        }
        _ => true,
    };
    let statements = Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| {
            if starts_allowed {
                Refusal::Invalid(format!("could not parse the statement: {e}"))
            } else {
                kind_refused(&leading)
            }
        })?;
    let statement = match statements.as_slice() {
        [one] => one,
        [] => return Err(Refusal::Invalid("the statement is empty".into())),
        more => {
            return Err(Refusal::Invalid(format!(
                "send one statement at a time (found {})",
                more.len()
            )));
        }
    };
    match statement {
        Statement::Query(_)
        | Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_) => {}
        _ => return Err(kind_refused(&leading)),
    }
    match statement.visit(&mut Judge) {
        ControlFlow::Break(refusal) => Err(refusal),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn kind_refused(leading: &str) -> Refusal {
    Refusal::Denied(format!(
        "`{leading}` statements are not available to plugins: plugin SQL may only query \
         (SELECT, WITH, VALUES) or INSERT, UPDATE and DELETE rows of its own tables; schema \
         changes belong in migrations"
    ))
}

/// What the parser would read differently from PostgreSQL, or hides a name
/// from the syntax tree.
fn check_tokens(tokens: &[Token]) -> Result<(), Refusal> {
    for (i, token) in tokens.iter().enumerate() {
        let Token::Word(word) = token else { continue };
        // `U&"pg\0073leep"` is pg_sleep to PostgreSQL, but `U & "pg\0073leep"`
        // to the parser.
        if word.quote_style.is_none()
            && word.value.eq_ignore_ascii_case("u")
            && matches!(tokens.get(i + 1), Some(Token::Ampersand))
            && matches!(tokens.get(i + 2), Some(Token::Word(w)) if w.quote_style.is_some())
        {
            return Err(Refusal::Denied(
                "Unicode escapes in names (`U&\"…\"`) are not accepted in plugin SQL; write the \
                 characters themselves"
                    .into(),
            ));
        }
        let name = word.value.to_ascii_lowercase();
        if CATALOG_TYPES.contains(&name.as_str()) {
            return Err(Refusal::Denied(format!(
                "`{name}` is not available to plugins: it looks objects up in the system catalogs"
            )));
        }
    }
    Ok(())
}

/// The statement's first words, to name what was refused.
fn leading_keywords(tokens: &[Token]) -> String {
    tokens
        .iter()
        .filter_map(|t| match t {
            // Keywords only: `TRUNCATE loot` is named `TRUNCATE`.
            Token::Word(w) if w.keyword != Keyword::NoKeyword => Some(w.value.to_ascii_uppercase()),
            Token::Whitespace(_) => None,
            _ => Some(String::new()),
        })
        .take_while(|w| !w.is_empty())
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

struct Judge;

impl Visitor for Judge {
    type Break = Refusal;

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<Refusal> {
        check_relation(relation)
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Refusal> {
        match factor {
            // `FROM f(…)`: a set-returning function call.
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => check_function(name),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Refusal> {
        check_set_expr(&query.body)
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Refusal> {
        if select.into.is_some() {
            return ControlFlow::Break(Refusal::Denied(
                "`SELECT … INTO` is not available to plugins: it creates a table, and tables are \
                 created by migrations"
                    .into(),
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Refusal> {
        match expr {
            Expr::Function(f) => check_function(&f.name),
            _ => ControlFlow::Continue(()),
        }
    }
}

/// `TABLE name` and MERGE inside set operations carry names outside the
/// relation visitor's reach.
fn check_set_expr(body: &SetExpr) -> ControlFlow<Refusal> {
    match body {
        SetExpr::SetOperation { left, right, .. } => {
            check_set_expr(left)?;
            check_set_expr(right)
        }
        SetExpr::Table(table) => {
            let parts = [&table.schema_name, &table.table_name]
                .into_iter()
                .flatten()
                .map(|i| i.value.to_ascii_lowercase())
                .collect::<Vec<_>>();
            check_relation_parts(&parts)
        }
        SetExpr::Merge(_) => ControlFlow::Break(Refusal::Denied(
            "MERGE is not available to plugins; use INSERT … ON CONFLICT".into(),
        )),
        _ => ControlFlow::Continue(()),
    }
}

/// Lower-cased parts of a name; names computed by functions are refused.
fn parts(name: &ObjectName) -> Result<Vec<String>, Refusal> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Ok(ident.value.to_ascii_lowercase()),
            ObjectNamePart::Function(_) => Err(Refusal::Denied(format!(
                "`{name}`: computed names are not available to plugins"
            ))),
        })
        .collect()
}

fn check_relation(name: &ObjectName) -> ControlFlow<Refusal> {
    match parts(name) {
        Ok(parts) => check_relation_parts(&parts),
        Err(refusal) => ControlFlow::Break(refusal),
    }
}

fn check_relation_parts(parts: &[String]) -> ControlFlow<Refusal> {
    let system = parts.iter().enumerate().any(|(i, part)| {
        let schema = i + 1 < parts.len();
        part.starts_with("pg_") || (schema && part == "information_schema")
    });
    if system {
        return ControlFlow::Break(Refusal::Denied(format!(
            "`{}` is not available to plugins: the system catalogs and statistics views \
             (pg_*, information_schema) describe every plugin's tables and sessions",
            parts.join(".")
        )));
    }
    ControlFlow::Continue(())
}

fn check_function(name: &ObjectName) -> ControlFlow<Refusal> {
    let parts = match parts(name) {
        Ok(parts) => parts,
        Err(refusal) => return ControlFlow::Break(refusal),
    };
    let Some(function) = parts.last() else {
        return ControlFlow::Continue(());
    };
    let denied = DENIED_NAMES.contains(&function.as_str())
        || DENIED_PREFIXES.iter().any(|p| function.starts_with(p));
    if denied {
        return ControlFlow::Break(Refusal::Denied(format!(
            "`{}` is not available to plugins: functions that act outside the plugin's own data \
             (sleeping, locks, settings, server files, other sessions, large objects, SQL given \
             as text) are refused",
            parts.join(".")
        )));
    }
    ControlFlow::Continue(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(sql: &str) -> Result<(), Refusal> {
        judge(sql)
    }

    #[test]
    fn plugin_statements_pass() {
        for sql in [
            "SELECT 1 AS one",
            "SELECT id, body FROM notes WHERE id = $1",
            "WITH x AS (SELECT 1 AS n) SELECT n FROM x",
            "VALUES (1), (2)",
            "INSERT INTO notes (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = excluded.body WHERE notes.body <> excluded.body RETURNING id",
            "UPDATE stock_items SET reserved = reserved + $2 WHERE sku = $1 AND on_hand - reserved - committed >= $2",
            "DELETE FROM notes WHERE id = $1",
            "SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM order_status_history WHERE order_id = $1",
            "SELECT * FROM generate_series(1, 3) AS g(n)",
            "SELECT x FROM t FOR UPDATE",
            "SELECT $1::bigint, CAST($2 AS TEXT), txid_current()",
            "SELECT COUNT(*) FROM outbox_events",
            "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b",
            "SELECT 'pg_sleep(1)' AS just_text -- pg_sleep(1)",
        ] {
            assert_eq!(verdict(sql), Ok(()), "{sql}");
        }
    }

    fn denied(sql: &str) -> String {
        match verdict(sql) {
            Err(Refusal::Denied(m)) => m,
            other => panic!("`{sql}` should be denied, got {other:?}"),
        }
    }

    #[test]
    fn functions_outside_the_plugins_data_are_denied_anywhere() {
        for sql in [
            "SELECT pg_sleep(6)",
            "SELECT PG_SLEEP(6)",
            "SELECT pg_catalog.pg_sleep(6)",
            "SELECT \"pg_sleep\"(6)",
            "SELECT pg_advisory_lock(7394021)",
            "SELECT pg_try_advisory_xact_lock(1, 2)",
            "SELECT pg_cancel_backend(1), pg_terminate_backend(1)",
            "SELECT * FROM pg_ls_dir('.')",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT pg_notify('c', 'x')",
            "SELECT set_config('role', 'postgres', false)",
            "SELECT current_setting('mercato.host_key')",
            "SELECT * FROM dblink('host=x', 'select 1') AS t(a int)",
            "SELECT lo_import('/etc/passwd')",
            "SELECT query_to_xml('select pg_sleep(1)', true, true, '')",
            "SELECT ts_stat('select pg_sleep(1)')",
            "SELECT to_regclass('other.notes')",
            "SELECT x FROM t WHERE x IN (SELECT pg_sleep(1))",
            "INSERT INTO loot (v) VALUES (pg_sleep(1)::text)",
            "UPDATE loot SET v = 'x' WHERE pg_advisory_lock(1) IS NULL",
            "DELETE FROM loot RETURNING pg_sleep(1)",
            "WITH s AS (SELECT pg_sleep(1)) SELECT * FROM s",
            "SELECT 1 UNION SELECT pg_sleep(1)::int",
            "SELECT max(pg_backend_pid()) OVER ()",
        ] {
            let message = denied(sql);
            assert!(message.contains("not available to plugins"), "{message}");
        }
    }

    #[test]
    fn catalogs_and_statistics_are_denied() {
        for sql in [
            "SELECT * FROM pg_stat_activity",
            "SELECT relname FROM pg_catalog.pg_class",
            "SELECT * FROM PG_CATALOG.PG_NAMESPACE",
            "SELECT * FROM information_schema.tables",
            "SELECT * FROM pg_toast.x",
            "SELECT * FROM notes n JOIN pg_class c ON c.relname = n.id",
            "INSERT INTO loot SELECT query FROM pg_stat_activity",
            "SELECT 'other.notes'::regclass",
            "SELECT CAST('x' AS regtype)",
        ] {
            denied(sql);
        }
    }

    #[test]
    fn statements_other_than_queries_and_row_changes_are_denied() {
        for (sql, named) in [
            ("SET ROLE postgres", "`SET ROLE`"),
            ("CREATE TEMP TABLE outbox_events (x int)", "`CREATE TEMP`"),
            ("CREATE TABLE sneaky (x int)", "`CREATE TABLE`"),
            ("DROP TABLE loot", "`DROP TABLE`"),
            ("COMMIT", "`COMMIT`"),
            ("TRUNCATE loot", "`TRUNCATE"),
            ("COPY loot TO STDOUT", "`COPY"),
            ("LISTEN x", "`LISTEN"),
            ("NOTIFY x", "`NOTIFY"),
            ("DO $$ BEGIN PERFORM pg_sleep(1); END $$", "`DO"),
            ("LOCK TABLE loot", "`LOCK TABLE`"),
            ("EXPLAIN ANALYZE SELECT 1", "`EXPLAIN ANALYZE`"),
            ("SHOW search_path", "`SHOW"),
        ] {
            let message = denied(sql);
            assert!(message.contains(named), "{sql}: {message}");
        }
        denied("SELECT * INTO copy FROM loot");
        denied("SELECT U&\"pg\\0073leep\"(1)");
    }

    #[test]
    fn unparsable_or_several_statements_are_invalid() {
        for sql in [
            "SELEC nonsense",
            "",
            "-- only a comment",
            "SELECT 1; SELECT pg_sleep(1)",
            "SELECT 1; DROP TABLE loot",
            "TABLE pg_class",
            "SELECT * FROM ROWS FROM (pg_sleep(1))",
        ] {
            match verdict(sql) {
                Err(Refusal::Invalid(_)) | Err(Refusal::Denied(_)) => {}
                Ok(()) => panic!("`{sql}` must be refused"),
            }
        }
        match verdict("SELEC nonsense") {
            Err(Refusal::Invalid(m)) => assert!(m.contains("could not parse"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn verdicts_are_cached_and_bounded() {
        let sql = GuestSql::default();
        assert!(sql.check("SELECT 1 AS one").is_ok());
        assert!(matches!(
            sql.check("SELECT pg_sleep(1)"),
            Err(GuestError::Denied(_))
        ));
        assert_eq!(sql.verdicts.lock().unwrap().len(), 2);
        for i in 0..CACHE_LIMIT + 5 {
            let _ = sql.check(&format!("SELECT {i} AS n"));
        }
        assert!(sql.verdicts.lock().unwrap().len() <= CACHE_LIMIT);
    }
}
