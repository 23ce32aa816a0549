//! One convention for every list endpoint (Stripe's): `limit` (default 20,
//! at most 100), a cursor `starting_after=<id>` (the page after that object)
//! or `ending_before=<id>` (the page before it), newest first, and the answer
//! `{"object": "list", "data": [...], "has_more": bool}`. A query parameter
//! the list does not take is a 400 naming it, so a misspelt filter is never
//! silently ignored. A cursor naming no object of the list is a 404
//! `resource_missing` (as Stripe answers). Both cursors at once page the
//! objects between them, newest first from `starting_after`.
//!
//! ```ignore
//! fn list(req: &Request) -> HttpResult {
//!     let query = ListQuery::parse(req, &["status"])?;
//!     let mut listing = Listing::new("orders", "id, status, created_at");
//!     if let Some(status) = query.filter("status") {
//!         listing = listing.condition("status = $?", status.into());
//!     }
//!     query.respond(listing)
//! }
//! ```
use crate::SqlValue;
use crate::db;
use crate::http::{HttpError, HttpResult, Request, Response, percent_decode};
use serde_json::{Value, json};

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 20;
/// Largest page.
pub const MAX_LIMIT: i64 = 100;
/// Longest cursor (an object id) read.
pub const MAX_CURSOR_BYTES: usize = 200;

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// The objects after this one (older, in newest-first order).
    StartingAfter(String),
    /// The objects before this one (newer).
    EndingBefore(String),
}

impl Cursor {
    fn id(&self) -> &str {
        match self {
            Cursor::StartingAfter(id) | Cursor::EndingBefore(id) => id,
        }
    }
}

/// A list request: page size, cursor and the filters the list takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Objects per page, 1 to [`MAX_LIMIT`].
    pub limit: i64,
    /// Where the page starts; `None` for the first page.
    pub cursor: Option<Cursor>,
    /// The other cursor, when a request gives both: the page is then the
    /// objects between them (see [`ListQuery::fetch`]).
    other_cursor: Option<Cursor>,
    filters: Vec<(String, String)>,
}

impl ListQuery {
    /// Reads `limit`, `starting_after`, `ending_before` and the `filters` this
    /// list takes from the query string. Any other parameter, a parameter given
    /// twice, a `limit` outside 1..=100 or an empty cursor is a 400; both
    /// cursors at once page the objects between them ([`ListQuery::fetch`]).
    pub fn parse(req: &Request, filters: &[&str]) -> Result<Self, HttpError> {
        Self::parse_query(&req.query, filters)
    }

    /// [`ListQuery::parse`] on a raw query string.
    pub fn parse_query(query: &str, filters: &[&str]) -> Result<Self, HttpError> {
        let mut parsed = ListQuery {
            limit: DEFAULT_LIMIT,
            cursor: None,
            other_cursor: None,
            filters: Vec::new(),
        };
        let mut seen: Vec<String> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(raw_key);
            let value = percent_decode(raw_value);
            if seen.contains(&key) {
                return Err(HttpError::bad_request(
                    "duplicate_parameter",
                    &format!("query parameter `{key}` is given more than once"),
                ));
            }
            seen.push(key.clone());
            match key.as_str() {
                "limit" => {
                    parsed.limit = value
                        .parse::<i64>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            HttpError::bad_request(
                                "invalid_limit",
                                &format!("limit must be a whole number from 1 to {MAX_LIMIT}, got `{value}`"),
                            )
                        })?;
                }
                "starting_after" | "ending_before" => {
                    if value.is_empty() || value.len() > MAX_CURSOR_BYTES {
                        return Err(HttpError::bad_request(
                            "invalid_cursor",
                            &format!(
                                "{key} must be the id of an object of this list (1 to {MAX_CURSOR_BYTES} bytes)"
                            ),
                        ));
                    }
                    let cursor = if key == "starting_after" {
                        Cursor::StartingAfter(value)
                    } else {
                        Cursor::EndingBefore(value)
                    };
                    if parsed.cursor.is_some() {
                        parsed.other_cursor = Some(cursor);
                    } else {
                        parsed.cursor = Some(cursor);
                    }
                }
                other if filters.contains(&other) => parsed.filters.push((key, value)),
                other => {
                    let mut known = vec!["limit", "starting_after", "ending_before"];
                    known.extend_from_slice(filters);
                    return Err(HttpError::bad_request(
                        "unknown_parameter",
                        &format!(
                            "unknown query parameter `{other}`; this list takes {}",
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(parsed)
    }

    /// Checks the cursors against the list: one naming no object (`exists`
    /// says no) is a 404 `resource_missing`.
    pub fn check_cursors(
        &self,
        mut exists: impl FnMut(&str) -> Result<bool, HttpError>,
    ) -> Result<(), HttpError> {
        for cursor in self.cursor.iter().chain(&self.other_cursor) {
            let id = cursor.id();
            if !exists(id)? {
                return Err(HttpError::not_found(
                    "resource_missing",
                    &format!("no object `{id}` in this list"),
                ));
            }
        }
        Ok(())
    }

    /// The two cursors when a request gives both, as (starting_after,
    /// ending_before). They are always of both kinds: a parameter given
    /// twice is refused when parsed.
    fn window(&self) -> Option<(&str, &str)> {
        match (self.cursor.as_ref()?, self.other_cursor.as_ref()?) {
            (Cursor::StartingAfter(a), Cursor::EndingBefore(b))
            | (Cursor::EndingBefore(b), Cursor::StartingAfter(a)) => Some((a, b)),
            _ => None,
        }
    }

    /// Whether the request gave both cursors (a list that cannot page a
    /// window between them refuses it).
    pub fn has_both_cursors(&self) -> bool {
        self.other_cursor.is_some()
    }

    /// The value of filter `name`, if given (possibly empty).
    pub fn filter(&self, name: &str) -> Option<&str> {
        self.filters
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Runs `listing` for this page: the objects as JSON and whether more
    /// follow in the direction of travel. An unknown cursor is a 404.
    pub fn fetch(&self, listing: Listing) -> Result<(Vec<Value>, bool), HttpError> {
        let Listing {
            table,
            columns,
            sort,
            id,
            mut conditions,
            mut params,
            json_columns,
        } = listing;
        let mut descending = true;
        self.check_cursors(|cursor| {
            let found = db::query(
                &format!("SELECT {id} FROM {table} WHERE {id} = $1"),
                &[cursor.into()],
            )?;
            Ok(!found.is_empty())
        })?;
        if let Some((after, before)) = self.window() {
            // Both cursors: the objects between them, newest first from
            // `starting_after` (empty when `ending_before` is not older).
            for (cursor, cmp) in [(after, "<"), (before, ">")] {
                params.push(cursor.into());
                let n = params.len();
                conditions.push(format!(
                    "({sort}, {id}) {cmp} (SELECT {sort}, {id} FROM {table} WHERE {id} = ${n})"
                ));
            }
        } else if let Some(cursor) = &self.cursor {
            params.push(cursor.id().into());
            let n = params.len();
            let (cmp, desc) = match cursor {
                Cursor::StartingAfter(_) => ("<", true),
                Cursor::EndingBefore(_) => (">", false),
            };
            descending = desc;
            conditions.push(format!(
                "({sort}, {id}) {cmp} (SELECT {sort}, {id} FROM {table} WHERE {id} = ${n})"
            ));
        }
        params.push((self.limit + 1).into());
        let direction = if descending { "DESC" } else { "ASC" };
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {columns} FROM {table}{filter} ORDER BY {sort} {direction}, {id} {direction} LIMIT ${}",
            params.len()
        );
        let rows = db::query(&sql, &params)?;
        let mut data = rows.to_json_parsing(&json_columns);
        let has_more = data.len() as i64 > self.limit;
        data.truncate(self.limit as usize);
        if !descending {
            data.reverse();
        }
        Ok((data, has_more))
    }

    /// [`ListQuery::fetch`] answered as a list, each object passed through `shape`.
    pub fn respond_with(&self, listing: Listing, shape: impl Fn(Value) -> Value) -> HttpResult {
        let (data, has_more) = self.fetch(listing)?;
        Ok(page(data.into_iter().map(shape).collect(), has_more))
    }

    /// [`ListQuery::fetch`] answered as a list.
    pub fn respond(&self, listing: Listing) -> HttpResult {
        self.respond_with(listing, |v| v)
    }
}

/// A list answer: `{"object": "list", "data": [...], "has_more": ...}`.
pub fn page(data: Vec<Value>, has_more: bool) -> Response {
    Response::json(
        200,
        &json!({ "object": "list", "data": data, "has_more": has_more }),
    )
}

/// What a list selects: a table (or view), its columns, and the conditions of
/// its filters. Rows are ordered newest first by `sort` then `id`, so
/// `(sort, id)` must be unique and stable (e.g. `created_at`, `id`).
#[derive(Debug, Clone)]
pub struct Listing {
    table: String,
    columns: String,
    sort: String,
    id: String,
    conditions: Vec<String>,
    params: Vec<SqlValue>,
    json_columns: Vec<&'static str>,
}

impl Listing {
    /// `SELECT columns FROM table`, newest first by `created_at`, `id`.
    pub fn new(table: &str, columns: &str) -> Self {
        Listing {
            table: table.to_owned(),
            columns: columns.to_owned(),
            sort: "created_at".into(),
            id: "id".into(),
            conditions: Vec::new(),
            params: Vec::new(),
            json_columns: Vec::new(),
        }
    }

    /// Orders by `sort` (then `id`) instead of `created_at`.
    pub fn sorted_by(mut self, sort: &str, id: &str) -> Self {
        self.sort = sort.to_owned();
        self.id = id.to_owned();
        self
    }

    /// Adds a condition with one parameter, written `$?`
    /// (`"status = $?"`); it is numbered in place.
    pub fn condition(mut self, sql: &str, value: SqlValue) -> Self {
        self.params.push(value);
        let n = self.params.len();
        self.conditions.push(sql.replace("$?", &format!("${n}")));
        self
    }

    /// Adds a condition without parameters (`"disabled_at IS NULL"`).
    pub fn condition_fixed(mut self, sql: &str) -> Self {
        self.conditions.push(sql.to_owned());
        self
    }

    /// Columns holding JSON text, answered as JSON values.
    pub fn json_columns(mut self, columns: &[&'static str]) -> Self {
        self.json_columns = columns.to_vec();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<ListQuery, HttpError> {
        ListQuery::parse_query(query, &["status", "buyer_id"])
    }

    #[test]
    fn defaults_and_filters_are_read() {
        let q = parse("").unwrap();
        assert_eq!((q.limit, q.cursor.clone()), (DEFAULT_LIMIT, None));
        let q = parse("limit=100&status=PAID&starting_after=o%201").unwrap();
        assert_eq!(q.limit, 100);
        assert_eq!(q.filter("status"), Some("PAID"));
        assert_eq!(q.filter("buyer_id"), None);
        assert_eq!(q.cursor, Some(Cursor::StartingAfter("o 1".into())));
        let q = parse("ending_before=x").unwrap();
        assert_eq!(q.cursor, Some(Cursor::EndingBefore("x".into())));
    }

    #[test]
    fn bad_queries_are_400s_that_name_the_problem() {
        for (query, code) in [
            ("limit=0", "invalid_limit"),
            ("limit=101", "invalid_limit"),
            ("limit=ten", "invalid_limit"),
            ("limit=", "invalid_limit"),
            ("starting_after=", "invalid_cursor"),
            ("starting_after=a&ending_before=", "invalid_cursor"),
            ("stauts=PAID", "unknown_parameter"),
            ("status=PAID&status=NEW", "duplicate_parameter"),
        ] {
            let e = parse(query).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, code), "{query}");
        }
        let e = parse("stauts=PAID").unwrap_err();
        assert!(e.message.contains("`stauts`"), "{}", e.message);
        assert!(e.message.contains("status, buyer_id"), "{}", e.message);
    }

    #[test]
    fn an_unknown_cursor_is_a_404_and_both_make_a_window() {
        let q = parse("starting_after=a&ending_before=b").unwrap();
        let e = q.check_cursors(|id| Ok(id == "a")).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (404, "resource_missing"));
        assert!(e.message.contains("`b`"), "{}", e.message);
        assert!(q.check_cursors(|_| Ok(true)).is_ok());
        assert_eq!(q.window(), Some(("a", "b")));
        let q = parse("ending_before=b&starting_after=a").unwrap();
        assert_eq!(q.window(), Some(("a", "b")));
        let q = parse("ending_before=a").unwrap();
        assert!(q.check_cursors(|_| Ok(true)).is_ok());
        assert_eq!(q.window(), None);
        assert_eq!(q.check_cursors(|_| Ok(false)).unwrap_err().status, 404);
    }

    #[test]
    fn conditions_are_numbered_in_order() {
        let l = Listing::new("t", "id")
            .condition("a = $?", 1.into())
            .condition("b >= $?", "x".into());
        assert_eq!(l.conditions, ["a = $1", "b >= $2"]);
        assert_eq!(l.params.len(), 2);
    }
}
