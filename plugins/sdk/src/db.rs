//! The plugin's own database, inside the current call's transaction.
//!
//! Statements use `$1..$n` placeholders on every backend. The host commits or
//! rolls back; a plugin never issues `BEGIN`/`COMMIT` itself.
use crate::bindings::mercato::plugin::{storage, types};
use crate::{Error, SqlValue};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Runs a statement and returns the number of rows it changed.
pub fn execute(sql: &str, params: &[SqlValue]) -> Result<u64, Error> {
    storage::execute(sql, params)
}

/// Runs a query and returns all its rows.
pub fn query(sql: &str, params: &[SqlValue]) -> Result<Rows, Error> {
    storage::query(sql, params).map(Rows)
}

/// Rows returned by [`query`].
#[derive(Debug, Clone)]
pub struct Rows(types::Rows);

impl Rows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.0.rows.len()
    }

    /// True when the query returned nothing.
    pub fn is_empty(&self) -> bool {
        self.0.rows.is_empty()
    }

    /// The first row, if any.
    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }

    /// Iterates over the rows.
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.0.rows.iter().map(|values| Row {
            columns: &self.0.columns,
            values,
        })
    }

    /// Every row as a JSON object (see [`Row::to_json`]).
    pub fn to_json(&self) -> Vec<Value> {
        self.iter().map(|row| row.to_json()).collect()
    }

    /// Every row as a JSON object, with JSON stored as text parsed (see
    /// [`Row::to_json_parsing`]).
    pub fn to_json_parsing(&self, json_columns: &[&str]) -> Vec<Value> {
        self.iter()
            .map(|row| row.to_json_parsing(json_columns))
            .collect()
    }

    /// The first row as a `T` (see [`Row::parse`]), if there is one.
    pub fn parse_first<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        self.first().map(|row| row.parse()).transpose()
    }

    /// Every row as a `T` (see [`Row::parse`]).
    pub fn parse_all<T: DeserializeOwned>(&self) -> Result<Vec<T>, Error> {
        self.iter().map(|row| row.parse()).collect()
    }
}

/// One row; columns are looked up by name.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [SqlValue],
}

impl<'a> Row<'a> {
    /// The raw value of `column`.
    pub fn value(&self, column: &str) -> Result<&'a SqlValue, Error> {
        self.columns
            .iter()
            .position(|c| c == column)
            .map(|i| &self.values[i])
            .ok_or_else(|| Error::Internal(format!("query returned no column `{column}`")))
    }

    /// `column` as an integer. Integral text is accepted too: PostgreSQL returns
    /// `SUM(bigint)` as `numeric`, which reaches plugins as text.
    pub fn int(&self, column: &str) -> Result<i64, Error> {
        match self.value(column)? {
            SqlValue::Integer(i) => Ok(*i),
            SqlValue::Text(t) => t
                .parse()
                .map_err(|_| mismatch(column, "integer", &SqlValue::Text(t.clone()))),
            other => Err(mismatch(column, "integer", other)),
        }
    }

    /// `column` as text.
    pub fn text(&self, column: &str) -> Result<&'a str, Error> {
        match self.value(column)? {
            SqlValue::Text(s) => Ok(s),
            other => Err(mismatch(column, "text", other)),
        }
    }

    /// `column` as text, `None` for SQL NULL.
    pub fn opt_text(&self, column: &str) -> Result<Option<&'a str>, Error> {
        match self.value(column)? {
            SqlValue::Null => Ok(None),
            SqlValue::Text(s) => Ok(Some(s)),
            other => Err(mismatch(column, "text", other)),
        }
    }

    /// The row as a JSON object keyed by column name, for answers whose fields
    /// are the selected columns as stored (rename with `AS`): integers and
    /// reals are numbers, text is a string, NULL is null, a blob is an array
    /// of bytes. The SELECT list is then the one place the fields are named.
    pub fn to_json(&self) -> Value {
        let fields = self.columns.iter().zip(self.values).map(|(column, value)| {
            let value = match value {
                SqlValue::Null => Value::Null,
                SqlValue::Integer(i) => Value::from(*i),
                SqlValue::Real(r) => Value::from(*r),
                SqlValue::Text(t) => Value::from(t.as_str()),
                SqlValue::Blob(b) => Value::from(b.as_slice()),
            };
            (column.clone(), value)
        });
        Value::Object(fields.collect::<Map<_, _>>())
    }

    /// [`Row::to_json`], with the text of each of `json_columns` (JSON a
    /// plugin stored as text, such as attributes or snapshots) parsed into a
    /// JSON value; text that is not JSON becomes null.
    pub fn to_json_parsing(&self, json_columns: &[&str]) -> Value {
        let mut object = self.to_json();
        for column in json_columns {
            let parsed = object[*column]
                .as_str()
                .and_then(|text| serde_json::from_str(text).ok());
            object[*column] = parsed.unwrap_or(Value::Null);
        }
        object
    }

    /// The row read into a `T` by serde from [`Row::to_json`]: fields are
    /// columns (rename with `AS`), so a struct deriving `Deserialize` needs no
    /// hand-written mapping. A row that does not fit is an internal error: the
    /// plugin's own SQL and types disagree. (PostgreSQL returns `SUM(bigint)`
    /// as text; read such aggregates with [`Row::int`].)
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_value(self.to_json()).map_err(|e| {
            Error::Internal(format!(
                "a row of ({}) does not fit {}: {e}",
                self.columns.join(", "),
                std::any::type_name::<T>()
            ))
        })
    }

    /// `column` as an integer, `None` for SQL NULL.
    pub fn opt_int(&self, column: &str) -> Result<Option<i64>, Error> {
        match self.value(column)? {
            SqlValue::Null => Ok(None),
            _ => self.int(column).map(Some),
        }
    }
}

fn mismatch(column: &str, wanted: &str, got: &SqlValue) -> Error {
    Error::Internal(format!("column `{column}` is not {wanted}: {got:?}"))
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}

impl From<i32> for SqlValue {
    fn from(v: i32) -> Self {
        SqlValue::Integer(v.into())
    }
}

impl From<u32> for SqlValue {
    fn from(v: u32) -> Self {
        SqlValue::Integer(v.into())
    }
}

impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Integer(v.into())
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}

impl From<&String> for SqlValue {
    fn from(v: &String) -> Self {
        SqlValue::Text(v.clone())
    }
}

impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> Self {
        SqlValue::Blob(v)
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_becomes_a_json_object_of_its_columns() {
        let rows = Rows(types::Rows {
            columns: vec!["id".into(), "n".into(), "at".into(), "ratio".into()],
            rows: vec![vec![
                SqlValue::Text("a".into()),
                SqlValue::Integer(7),
                SqlValue::Null,
                SqlValue::Real(0.5),
            ]],
        });
        assert_eq!(
            rows.to_json(),
            [json!({ "id": "a", "n": 7, "at": null, "ratio": 0.5 })]
        );
        let stored = Rows(types::Rows {
            columns: vec!["attributes".into(), "broken".into()],
            rows: vec![vec![
                SqlValue::Text(r#"{"size":"M"}"#.into()),
                SqlValue::Text("{".into()),
            ]],
        });
        assert_eq!(
            stored.to_json_parsing(&["attributes", "broken"]),
            [json!({ "attributes": { "size": "M" }, "broken": null })]
        );
        let row = rows.first().unwrap();
        assert_eq!((row.int("n").unwrap(), row.text("id").unwrap()), (7, "a"));
        assert_eq!(row.opt_text("at").unwrap(), None);
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Item {
        id: String,
        n: i64,
        at: Option<String>,
    }

    #[test]
    fn rows_parse_into_structs_by_column_name() {
        let rows = |n: SqlValue| {
            Rows(types::Rows {
                columns: vec!["id".into(), "n".into(), "at".into()],
                rows: vec![vec![SqlValue::Text("a".into()), n, SqlValue::Null]],
            })
        };
        let item = Item {
            id: "a".into(),
            n: 7,
            at: None,
        };
        assert_eq!(
            rows(SqlValue::Integer(7)).parse_first::<Item>().unwrap(),
            Some(item)
        );
        assert_eq!(
            rows(SqlValue::Integer(7))
                .parse_all::<Item>()
                .unwrap()
                .len(),
            1
        );
        let Err(Error::Internal(message)) = rows(SqlValue::Text("x".into())).parse_all::<Item>()
        else {
            panic!("a text where an integer belongs must not parse");
        };
        assert!(message.contains("(id, n, at)"), "{message}");
    }
}
