//! The authorizer of plugin SQL: which actions, tables and functions each
//! actor (the host, a guest call, a read-only call, a migration) may use.
use crate::storage::schema::is_host_table;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// Who is running statements on a connection right now.
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Actor {
    Host = 0,
    Guest = 1,
    GuestReadOnly = 2,
    Migration = 3,
}

/// Functions plugin SQL may call: SQLite's core scalar, aggregate, window,
/// date/time, math and JSON functions, and FTS5's auxiliary functions. Not
/// `load_extension`, `fts3_tokenizer` (a pointer-taking backdoor), nor the
/// introspection helpers.
pub(super) const FUNCTIONS: &[&str] = &[
    "abs",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "avg",
    "bm25",
    "ceil",
    "ceiling",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "cos",
    "cosh",
    "count",
    "cume_dist",
    "date",
    "datetime",
    "degrees",
    "dense_rank",
    "exp",
    "first_value",
    "floor",
    "format",
    "glob",
    "group_concat",
    "hex",
    "highlight",
    "ifnull",
    "iif",
    "instr",
    "json",
    "json_array",
    "json_array_length",
    "json_each",
    "json_error_position",
    "json_extract",
    "json_group_array",
    "json_group_object",
    "json_insert",
    "json_object",
    "json_patch",
    "json_quote",
    "json_remove",
    "json_replace",
    "json_set",
    "json_tree",
    "json_type",
    "json_valid",
    "jsonb",
    "jsonb_array",
    "jsonb_extract",
    "jsonb_group_array",
    "jsonb_group_object",
    "jsonb_insert",
    "jsonb_object",
    "jsonb_patch",
    "jsonb_remove",
    "jsonb_replace",
    "jsonb_set",
    "julianday",
    "lag",
    "last_insert_rowid",
    "last_value",
    "lead",
    "length",
    "like",
    "likelihood",
    "likely",
    "ln",
    "log",
    "log10",
    "log2",
    "lower",
    "ltrim",
    "max",
    "min",
    "mod",
    "nth_value",
    "ntile",
    "nullif",
    "octet_length",
    "percent_rank",
    "pi",
    "pow",
    "power",
    "printf",
    "quote",
    "radians",
    "random",
    "randomblob",
    "rank",
    "replace",
    "round",
    "row_number",
    "rtrim",
    "sign",
    "sin",
    "sinh",
    "snippet",
    "sqrt",
    "strftime",
    "string_agg",
    "substr",
    "substring",
    "sum",
    "tan",
    "tanh",
    "time",
    "timediff",
    "total",
    "trim",
    "trunc",
    "typeof",
    "unhex",
    "unicode",
    "unistr",
    "unistr_quote",
    "unixepoch",
    "unlikely",
    "upper",
    "zeroblob",
];

/// SQLite's own helpers that `ALTER TABLE … RENAME`/`DROP COLUMN` run; SQLite
/// itself refuses them when called from SQL text, so only DDL reaches them.
pub(super) const ALTER_FUNCTIONS: &[&str] = &[
    "sqlite_drop_column",
    "sqlite_rename_column",
    "sqlite_rename_quotefix",
    "sqlite_rename_table",
    "sqlite_rename_test",
];

/// Virtual-table modules a migration may create (full-text search).
pub(super) const VTAB_MODULES: &[&str] = &["fts5"];
pub(super) fn authorize(actor: u8, ctx: &AuthContext<'_>) -> Authorization {
    if actor == Actor::Host as u8 {
        return Authorization::Allow;
    }
    let verdict = judge(actor, ctx);
    if verdict == Authorization::Deny {
        tracing::debug!(action = ?ctx.action, database = ?ctx.database_name, "plugin SQL refused by the authorizer");
    }
    verdict
}

pub(super) fn judge(actor: u8, ctx: &AuthContext<'_>) -> Authorization {
    let allow = |yes: bool| {
        if yes {
            Authorization::Allow
        } else {
            Authorization::Deny
        }
    };
    let read_only = actor == Actor::GuestReadOnly as u8;
    let migration = actor == Actor::Migration as u8;
    // Only the plugin's own database, never `temp` (a temp table or trigger
    // would outlive the call on this pooled connection).
    let own = ctx.database_name.is_none_or(|db| db == "main");
    match ctx.action {
        AuthAction::Select | AuthAction::Recursive => Authorization::Allow,
        AuthAction::Read { .. } => Authorization::Allow,
        AuthAction::Function { function_name } => allow(
            FUNCTIONS
                .binary_search_by(|f| cmp_ignore_case(f, function_name))
                .is_ok()
                || (migration && ALTER_FUNCTIONS.contains(&function_name)),
        ),
        // DDL also writes the schema tables (ALTER TABLE … RENAME fixes up
        // `temp`'s too); DEFENSIVE keeps direct writes out.
        AuthAction::Insert { table_name }
        | AuthAction::Delete { table_name }
        | AuthAction::Update { table_name, .. }
            if migration && is_schema_table(table_name) =>
        {
            Authorization::Allow
        }
        AuthAction::Insert { table_name }
        | AuthAction::Delete { table_name }
        | AuthAction::Update { table_name, .. } => {
            allow(own && !read_only && !is_host_table(table_name))
        }
        AuthAction::CreateTable { table_name }
        | AuthAction::DropTable { table_name }
        | AuthAction::CreateIndex { table_name, .. }
        | AuthAction::DropIndex { table_name, .. }
        | AuthAction::CreateTrigger { table_name, .. }
        | AuthAction::DropTrigger { table_name, .. }
        | AuthAction::AlterTable { table_name, .. }
        | AuthAction::Analyze { table_name } => {
            allow(migration && own && !is_host_table(table_name))
        }
        AuthAction::CreateView { view_name } | AuthAction::DropView { view_name } => {
            allow(migration && own && !is_host_table(view_name))
        }
        AuthAction::Reindex { .. } => allow(migration && own),
        AuthAction::CreateVtable {
            table_name,
            module_name,
        }
        | AuthAction::DropVtable {
            table_name,
            module_name,
        } => allow(
            migration && own && !is_host_table(table_name) && VTAB_MODULES.contains(&module_name),
        ),
        // ATTACH/DETACH, PRAGMA, transaction control and savepoints, temp
        // objects, anything SQLite adds later.
        _ => Authorization::Deny,
    }
}

pub(super) fn cmp_ignore_case(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

pub(super) fn is_schema_table(name: &str) -> bool {
    [
        "sqlite_master",
        "sqlite_schema",
        "sqlite_temp_master",
        "sqlite_temp_schema",
    ]
    .iter()
    .any(|t| t.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_allow_list_is_sorted_for_binary_search() {
        assert!(FUNCTIONS.windows(2).all(|w| w[0] < w[1]));
        assert!(
            FUNCTIONS
                .binary_search_by(|f| cmp_ignore_case(f, "JSON_EXTRACT"))
                .is_ok()
        );
        assert!(
            FUNCTIONS
                .binary_search_by(|f| cmp_ignore_case(f, "fts3_tokenizer"))
                .is_err()
        );
    }
}
