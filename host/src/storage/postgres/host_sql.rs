//! Host SQL on PostgreSQL: the host's statements are shared with SQLite and name
//! its tables plainly (`outbox_events`); here those names are qualified with the
//! host schema, so nothing a plugin creates (in its schema, or a temporary
//! table) can ever stand in for a host table.
use super::super::schema::HOST_TABLES;
use super::names::quote;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Distinct host statements stay well below this (a few dozen, some formatted
/// per table); the bound only keeps a bug from growing the map without end.
const CACHE_LIMIT: usize = 512;

/// Rewrites host SQL for one plugin's host schema, remembering the results.
pub(super) struct HostSql {
    replacements: Vec<(&'static str, String)>,
    cache: Mutex<HashMap<String, Arc<str>>>,
}

impl HostSql {
    pub(super) fn new(host_schema: &str) -> Self {
        HostSql {
            replacements: HOST_TABLES
                .iter()
                .map(|table| (*table, format!("{}.{table}", quote(host_schema))))
                .collect(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// `sql` with every host table name qualified.
    pub(super) fn qualify(&self, sql: &str) -> Arc<str> {
        if let Some(done) = self.cache.lock().expect("host sql cache poisoned").get(sql) {
            return done.clone();
        }
        let done: Arc<str> = self.rewrite(sql).into();
        let mut cache = self.cache.lock().expect("host sql cache poisoned");
        if cache.len() < CACHE_LIMIT {
            cache.insert(sql.to_owned(), done.clone());
        }
        done
    }

    fn rewrite(&self, sql: &str) -> String {
        let mut out = String::with_capacity(sql.len() + 64);
        let mut rest = sql;
        let mut previous: Option<char> = None;
        'scan: while let Some(c) = rest.chars().next() {
            // Only at the start of a word that is not itself qualified.
            if !previous.is_some_and(|p| is_word(p) || p == '.' || p == '"') {
                for (table, qualified) in &self.replacements {
                    if let Some(after) = rest.strip_prefix(table)
                        && !after.starts_with(is_word)
                    {
                        out.push_str(qualified);
                        rest = after;
                        previous = table.chars().last();
                        continue 'scan;
                    }
                }
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
            previous = Some(c);
        }
        out
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_tables_are_qualified_as_whole_words_only() {
        let sql = HostSql::new("ns_p_host");
        assert_eq!(
            &*sql.qualify(
                "INSERT INTO mercato_cursors (source, sequence) VALUES ($1, $2) \
                 ON CONFLICT (source) DO UPDATE SET sequence = excluded.sequence \
                 WHERE mercato_cursors.sequence < excluded.sequence"
            ),
            "INSERT INTO \"ns_p_host\".mercato_cursors (source, sequence) VALUES ($1, $2) \
             ON CONFLICT (source) DO UPDATE SET sequence = excluded.sequence \
             WHERE \"ns_p_host\".mercato_cursors.sequence < excluded.sequence"
        );
        assert_eq!(
            &*sql.qualify("SELECT x FROM outbox_events_archive, my_outbox_events, s.outbox_events"),
            "SELECT x FROM outbox_events_archive, my_outbox_events, s.outbox_events"
        );
        assert_eq!(
            &*sql.qualify("SELECT COUNT(*) AS n FROM outbox_events WHERE published_at IS NULL"),
            "SELECT COUNT(*) AS n FROM \"ns_p_host\".outbox_events WHERE published_at IS NULL"
        );
        // Cached: the same text comes back without a second rewrite.
        let a = sql.qualify("DELETE FROM mercato_scheduled WHERE event_id = $1");
        let b = sql.qualify("DELETE FROM mercato_scheduled WHERE event_id = $1");
        assert!(Arc::ptr_eq(&a, &b));
    }
}
