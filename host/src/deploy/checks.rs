//! Expand → migrate → contract: a migration that drops or renames a table or
//! column (or empties one) breaks the version still running, so it is refused
//! unless its file starts with the contract marker:
//!
//! ```sql
//! -- mercato:contract
//! ALTER TABLE orders DROP COLUMN legacy_note;
//! ```
//!
//! A contract step is deployed only once no running version reads what it removes.

/// The first line that marks a migration as a deliberate contract step.
pub const CONTRACT_MARKER: &str = "-- mercato:contract";

/// True when the migration is marked as a contract step.
pub fn is_contract(sql: &str) -> bool {
    sql.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .is_some_and(|l| l.eq_ignore_ascii_case(CONTRACT_MARKER))
}

/// The first destructive statement in `sql`, if any.
pub fn destructive_statement(sql: &str) -> Option<String> {
    strip_comments(sql)
        .split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .find(|statement| {
            let upper = statement.to_ascii_uppercase();
            upper.starts_with("DROP TABLE")
                || upper.starts_with("TRUNCATE")
                || (upper.starts_with("ALTER TABLE")
                    && (upper.contains(" DROP ") || upper.contains(" RENAME ")))
        })
}

fn strip_comments(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
        } else if let Some(after) = rest.strip_prefix('\'') {
            // Keep string literals whole so a `--` inside one is not a comment.
            let end = after.find('\'').map_or(after.len(), |i| i + 1);
            out.push('\'');
            out.push_str(&after[..end]);
            rest = &after[end..];
        } else {
            let c = rest.chars().next().expect("non-empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_renames_and_truncates_are_destructive() {
        for sql in [
            "DROP TABLE notes;",
            "alter table notes drop column body",
            "ALTER TABLE notes\n  DROP body;",
            "ALTER TABLE notes RENAME COLUMN body TO text;",
            "ALTER TABLE notes RENAME TO memos;",
            "TRUNCATE notes;",
            "CREATE TABLE a (x INT); DROP TABLE b;",
        ] {
            assert!(destructive_statement(sql).is_some(), "{sql}");
        }
    }

    #[test]
    fn expand_steps_and_comments_are_not() {
        for sql in [
            "ALTER TABLE orders ADD COLUMN channel TEXT NOT NULL DEFAULT 'web';",
            "CREATE INDEX notes_body ON notes (body);",
            "-- DROP TABLE notes;\nCREATE TABLE x (y INT);",
            "/* DROP TABLE notes; */ UPDATE notes SET body = 'drop table' WHERE id = '1';",
            "DROP INDEX IF EXISTS notes_body;",
        ] {
            assert_eq!(destructive_statement(sql), None, "{sql}");
        }
    }

    #[test]
    fn the_marker_must_lead_the_file() {
        assert!(is_contract(
            "\n-- mercato:contract\nALTER TABLE t DROP COLUMN c;"
        ));
        assert!(!is_contract(
            "ALTER TABLE t DROP COLUMN c;\n-- mercato:contract"
        ));
    }
}
