//! The plugin's own database, inside the current call's transaction.
//!
//! Statements use `$1..$n` placeholders on every backend. The host commits or
//! rolls back; a plugin never issues `BEGIN`/`COMMIT` itself.
use crate::bindings::mercato::plugin::{storage, types};
use crate::{Error, SqlValue};
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
        let row = rows.first().unwrap();
        assert_eq!((row.int("n").unwrap(), row.text("id").unwrap()), (7, "a"));
        assert_eq!(row.opt_text("at").unwrap(), None);
    }
}
