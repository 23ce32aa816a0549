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
//!
//! The check reads parsed SQL, never text, so comments cannot hide a keyword
//! (`ALTER TABLE notes DROP/**/body`) and a keyword in a literal or a comment
//! is not one. Destructive: `DROP TABLE`, `DROP SCHEMA`, `DROP DATABASE`, any
//! `DROP … CASCADE` (PostgreSQL then drops what depends on the object, columns
//! of a dropped type included), `TRUNCATE`, `DELETE` without `WHERE`, and
//! `ALTER TABLE … DROP [COLUMN]`, `RENAME [COLUMN] … TO`, `RENAME TO`. Not
//! destructive: views (they hold no data, and `DROP VIEW` + `CREATE VIEW` is
//! the only way SQLite changes one), indexes, triggers and constraints (no
//! data is lost; relaxing a CHECK is an expand step), and the bodies of
//! triggers and functions, which run later, on the plugin's own writes.
mod scan;

use sqlparser::ast::{AlterTableOperation, DropBehavior, ObjectType, SetExpr, Statement};
use sqlparser::dialect::{Dialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

/// The first line that marks a migration as a deliberate contract step.
pub const CONTRACT_MARKER: &str = "-- mercato:contract";

/// True when the migration is marked as a contract step.
pub fn is_contract(sql: &str) -> bool {
    sql.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .is_some_and(|l| l.eq_ignore_ascii_case(CONTRACT_MARKER))
}

/// No dialect the migration may be written in could even tokenize it, so the
/// check cannot say it is safe.
#[derive(Debug, thiserror::Error)]
#[error("no SQL dialect it may be written in can read it: {0}")]
pub struct Unreadable(String);

/// The first destructive statement of migration `file`, if any.
///
/// The dialect follows the file name: `.sqlite.sql` is SQLite's,
/// `.postgres.sql` PostgreSQL's, and a plain `.sql` runs on both, so it must be
/// safe as each of them reads it.
pub fn destructive_statement(file: &str, sql: &str) -> Result<Option<String>, Unreadable> {
    let sqlite = SQLiteDialect {};
    let postgres = PostgreSqlDialect {};
    let dialects: &[&dyn Dialect] = if file.ends_with(".sqlite.sql") {
        &[&sqlite]
    } else if file.ends_with(".postgres.sql") {
        &[&postgres]
    } else {
        &[&sqlite, &postgres]
    };
    let mut errors = Vec::new();
    for dialect in dialects {
        match check_as(*dialect, sql) {
            Ok(Some(found)) => return Ok(Some(found)),
            Ok(None) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    // A dialect that cannot tokenize the file cannot run it either; only when
    // none can is there nothing to vouch for.
    if errors.len() == dialects.len() {
        return Err(Unreadable(errors.join("; ")));
    }
    Ok(None)
}

/// Checks `sql` as `dialect` reads it: statement by statement, parsed where
/// sqlparser can, scanned as tokens where it cannot.
fn check_as(
    dialect: &dyn Dialect,
    sql: &str,
) -> Result<Option<String>, sqlparser::tokenizer::TokenizerError> {
    let tokens = Tokenizer::new(dialect, sql).tokenize_with_location()?;
    let mut start = 0;
    'restart: while start < tokens.len() {
        let mut parser = Parser::new(dialect).with_tokens_with_locations(tokens[start..].to_vec());
        loop {
            while parser.consume_token(&Token::SemiColon) {}
            if parser.peek_token_ref().token == Token::EOF {
                return Ok(None);
            }
            let at = start + parser.index();
            // A statement counts as parsed only when the parser stops at its end.
            let parsed = parser
                .parse_statement()
                .ok()
                .filter(|_| matches!(parser.peek_token_ref().token, Token::SemiColon | Token::EOF));
            match parsed {
                Some(statement) => {
                    if is_destructive(&statement) {
                        return Ok(Some(scan::shorten(statement.to_string())));
                    }
                }
                None => {
                    let end = scan::statement_end(&tokens, at);
                    if let Some(found) = scan::destructive(&tokens[at..end])? {
                        return Ok(Some(found));
                    }
                    start = end;
                    continue 'restart;
                }
            }
        }
    }
    Ok(None)
}

/// Whether running `statement` now destroys data or shape a running version reads.
fn is_destructive(statement: &Statement) -> bool {
    match statement {
        Statement::Drop {
            object_type,
            cascade,
            ..
        } => {
            *cascade
                || matches!(
                    object_type,
                    ObjectType::Table | ObjectType::Schema | ObjectType::Database
                )
        }
        Statement::DropDomain(d) => d.drop_behavior == Some(DropBehavior::Cascade),
        Statement::Truncate(_) | Statement::RenameTable(_) => true,
        Statement::Delete(delete) => delete.selection.is_none(),
        Statement::AlterTable(alter) => alter.operations.iter().any(|op| match op {
            AlterTableOperation::DropColumn { .. }
            | AlterTableOperation::RenameColumn { .. }
            | AlterTableOperation::RenameTable { .. } => true,
            AlterTableOperation::ChangeColumn {
                old_name, new_name, ..
            } => old_name != new_name,
            _ => false,
        }),
        // `WITH … DELETE`: the DELETE is the statement.
        Statement::Query(query) => match query.body.as_ref() {
            SetExpr::Delete(inner) => is_destructive(inner),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `sql` as a plain `.sql` file (both dialects).
    fn check(sql: &str) -> Option<String> {
        destructive_statement("0002_x.sql", sql).expect("readable")
    }

    #[test]
    fn drops_renames_truncates_and_unfiltered_deletes_are_destructive() {
        for sql in [
            "DROP TABLE notes;",
            "DROP TABLE IF EXISTS notes",
            "alter table notes drop column body",
            "ALTER TABLE notes\n  DROP body;",
            "ALTER TABLE notes RENAME COLUMN body TO text;",
            "ALTER TABLE notes RENAME TO memos;",
            "ALTER TABLE notes ADD COLUMN x TEXT, DROP COLUMN body;",
            "TRUNCATE notes;",
            "TRUNCATE TABLE notes",
            "DELETE FROM notes;",
            "CREATE TABLE a (x INT); DROP TABLE b;",
        ] {
            assert!(check(sql).is_some(), "{sql}");
        }
        for sql in [
            "DROP SCHEMA shop CASCADE;",
            "DROP TYPE status CASCADE;",
            "DROP DOMAIN money CASCADE;",
            "DELETE FROM notes USING archived;",
            "WITH x AS (SELECT 1) DELETE FROM notes;",
        ] {
            let found = destructive_statement("0002_x.postgres.sql", sql).unwrap();
            assert!(found.is_some(), "{sql}");
        }
    }

    #[test]
    fn comments_case_and_quotes_do_not_hide_a_destructive_statement() {
        for (sql, named) in [
            ("DROP/**/TABLE notes;", "DROP TABLE notes"),
            (
                "ALTER TABLE notes DROP/**/body;",
                "ALTER TABLE notes DROP body",
            ),
            (
                "ALTER/* x */TABLE notes DROP COLUMN body;",
                "ALTER TABLE notes DROP COLUMN body",
            ),
            (
                "ALTER -- split\nTABLE notes DROP -- here\nCOLUMN body;",
                "ALTER TABLE notes DROP COLUMN body",
            ),
            ("dRoP tAbLe NoTeS;", "DROP TABLE NoTeS"),
            ("DROP TABLE \"notes\";", "DROP TABLE \"notes\""),
            (
                "ALTER TABLE \"notes\" DROP \"body\";",
                "ALTER TABLE \"notes\" DROP \"body\"",
            ),
            (
                "CREATE INDEX i ON notes (body);\n/* ; */ TRUNCATE/**/notes;",
                "TRUNCATE notes",
            ),
        ] {
            assert_eq!(check(sql).as_deref(), Some(named), "{sql}");
        }
    }

    #[test]
    fn expand_steps_literals_comments_views_and_constraints_are_not() {
        for sql in [
            "ALTER TABLE orders ADD COLUMN channel TEXT NOT NULL DEFAULT 'web';",
            "CREATE INDEX notes_body ON notes (body);",
            "-- DROP TABLE notes;\nCREATE TABLE x (y INT);",
            "/* DROP TABLE notes; */ UPDATE notes SET body = 'drop table' WHERE id = '1';",
            "INSERT INTO notes (id, body) VALUES ('1', 'ALTER TABLE notes DROP body; TRUNCATE notes');",
            "DROP INDEX IF EXISTS notes_body;",
            "DROP VIEW IF EXISTS recent; CREATE VIEW recent AS SELECT * FROM notes;",
            "DELETE FROM notes WHERE body = '';",
            "UPDATE notes SET body = trim(body);",
            "ALTER TABLE notes ALTER COLUMN body SET DEFAULT '';",
            "ALTER TABLE notes RENAME CONSTRAINT a TO b;",
            "ALTER TABLE notes DROP CONSTRAINT notes_body_check;",
            "CREATE TABLE \"drop\" (\"truncate\" TEXT);",
        ] {
            assert_eq!(check(sql), None, "{sql}");
        }
    }

    #[test]
    fn trigger_and_function_bodies_that_delete_rows_are_not_migration_time_destruction() {
        let sqlite = "CREATE TRIGGER notes_gc AFTER INSERT ON notes\n\
                      BEGIN\n    DELETE FROM notes_cache;\n    \
                      SELECT CASE WHEN NEW.body = '' THEN RAISE(ABORT, 'empty') END;\n\
                      END;\nCREATE INDEX i ON notes (body);";
        assert_eq!(
            destructive_statement("0003_gc.sqlite.sql", sqlite).unwrap(),
            None
        );
        // sqlparser cannot parse `IF NOT EXISTS` here: the token scan delimits
        // the trigger by its BEGIN … END and leaves its body alone.
        let unparsed = "CREATE TEMP TRIGGER IF NOT EXISTS notes_gc BEFORE UPDATE OF body ON notes\n\
                        BEGIN\n    DELETE FROM notes_cache;\n    \
                        SELECT CASE WHEN NEW.body = '' THEN RAISE(ABORT, 'empty') END;\n\
                        END;\nCREATE INDEX i ON notes (body);";
        assert!(Parser::parse_sql(&SQLiteDialect {}, unparsed).is_err());
        assert_eq!(
            destructive_statement("0003_gc.sqlite.sql", unparsed).unwrap(),
            None
        );
        assert_eq!(
            destructive_statement(
                "0003_gc.sqlite.sql",
                &format!("{unparsed}\nDELETE FROM notes;")
            )
            .unwrap()
            .as_deref(),
            Some("DELETE FROM notes")
        );
        let postgres = "CREATE FUNCTION gc() RETURNS trigger LANGUAGE plpgsql AS $$\n\
                        BEGIN\n    DELETE FROM notes_cache;\n    TRUNCATE notes_log;\n    \
                        RETURN NEW;\nEND;\n$$;\n\
                        CREATE TRIGGER gc AFTER INSERT OR DELETE OR TRUNCATE ON notes\n\
                        FOR EACH STATEMENT EXECUTE FUNCTION gc();";
        assert_eq!(
            destructive_statement("0003_gc.postgres.sql", postgres).unwrap(),
            None
        );
        // …but what follows the trigger runs now.
        let after = format!("{sqlite}\nDELETE FROM notes;");
        assert_eq!(
            destructive_statement("0003_gc.sqlite.sql", &after)
                .unwrap()
                .as_deref(),
            Some("DELETE FROM notes")
        );
    }

    #[test]
    fn statements_sqlparser_cannot_parse_are_scanned_as_tokens() {
        let unparsed = |dialect: &dyn Dialect, sql: &str| {
            assert!(
                Parser::parse_sql(dialect, sql).is_err(),
                "sqlparser now parses {sql:?}; pick a form it cannot"
            );
        };
        // sqlparser knows no `DO`: its PL/pgSQL body runs now and is scanned.
        for sql in [
            "DO $$ BEGIN DROP/**/TABLE notes; END $$;",
            "DO $$ BEGIN IF true THEN ALTER TABLE notes DROP -- x\n body; END IF; END $$;",
            "DO $$ BEGIN DELETE FROM notes; END $$;",
        ] {
            unparsed(&PostgreSqlDialect {}, sql);
            let found = destructive_statement("0003_x.postgres.sql", sql).unwrap();
            assert!(found.is_some(), "{sql}");
        }
        for sql in [
            "DO $$ BEGIN RAISE NOTICE 'drop table notes'; DELETE FROM notes WHERE id = '1'; END $$;",
            "DO $$ BEGIN CREATE TYPE s AS ENUM ('a'); EXCEPTION WHEN duplicate_object THEN NULL; END $$;",
        ] {
            let found = destructive_statement("0003_x.postgres.sql", sql).unwrap();
            assert_eq!(found, None, "{sql}");
        }
        // SQLite's reading of `RENAME CONSTRAINT` fails; its clauses are scanned.
        let sql = "ALTER TABLE notes RENAME CONSTRAINT a TO b, DROP/**/body;";
        unparsed(&SQLiteDialect {}, sql);
        assert_eq!(
            destructive_statement("0003_x.sqlite.sql", sql)
                .unwrap()
                .as_deref(),
            Some("ALTER TABLE notes RENAME CONSTRAINT a TO b, DROP body")
        );
        let sql = "ALTER TABLE notes RENAME CONSTRAINT a TO b;";
        assert_eq!(
            destructive_statement("0003_x.sqlite.sql", sql).unwrap(),
            None
        );
    }

    #[test]
    fn a_plain_file_must_be_safe_as_each_dialect_reads_it() {
        // PostgreSQL reads one escaped string; SQLite a `DROP TABLE` after it.
        let sql = "SELECT E'\\'; DROP TABLE notes; --';";
        assert_eq!(
            destructive_statement("0002_x.postgres.sql", sql).unwrap(),
            None
        );
        assert_eq!(
            destructive_statement("0002_x.sql", sql).unwrap().as_deref(),
            Some("DROP TABLE notes")
        );
        assert!(destructive_statement("0002_x.sql", "SELECT 'unterminated").is_err());
    }

    #[test]
    fn every_shop_migration_passes() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let mut checked = 0;
        for context in std::fs::read_dir(&root).unwrap() {
            for file in std::fs::read_dir(context.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                let name = path.file_name().unwrap().to_str().unwrap().to_owned();
                let sql = std::fs::read_to_string(&path).unwrap();
                let found = destructive_statement(&name, &sql).unwrap();
                assert!(is_contract(&sql) || found.is_none(), "{name}: {found:?}");
                checked += 1;
            }
        }
        assert!(checked >= 15, "only {checked} migrations found");
        // The rebuild of coupon_rules is destructive, which is why it is marked.
        let rebuild =
            std::fs::read_to_string(root.join("coupons/0002_rule_coupons.sqlite.sql")).unwrap();
        assert_eq!(
            destructive_statement("0002_rule_coupons.sqlite.sql", &rebuild)
                .unwrap()
                .as_deref(),
            Some("DROP TABLE coupon_rules")
        );
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
