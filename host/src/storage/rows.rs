//! Typed reads of host-table rows. Host tables live in the plugin's own
//! database, which plugin code can reach (and on PostgreSQL, a plugin's own
//! triggers can shape what a host query returns): a missing column, a NULL
//! where a value is needed or a value of another type is a [`StorageError`],
//! never a panic or a silent zero.
use super::StorageError;
use crate::bindings::{Rows, SqlValue};

/// Row `i` of a host query's result.
#[derive(Clone, Copy)]
pub struct HostRow<'a> {
    rows: &'a Rows,
    i: usize,
}

/// The rows of a host query, in order.
pub fn host_rows(rows: &Rows) -> impl ExactSizeIterator<Item = HostRow<'_>> {
    (0..rows.rows.len()).map(move |i| HostRow { rows, i })
}

/// The first row of a host query, if any.
pub fn first_row(rows: &Rows) -> Option<HostRow<'_>> {
    host_rows(rows).next()
}

impl HostRow<'_> {
    fn value(&self, name: &str) -> Result<&SqlValue, StorageError> {
        let col = self
            .rows
            .columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| bad(name, "is missing from the result"))?;
        self.rows.rows[self.i]
            .get(col)
            .ok_or_else(|| bad(name, "is missing from the row"))
    }

    /// An integer column, or `None` for NULL. Text holding an integer is
    /// accepted: PostgreSQL returns some aggregates (`SUM`) as numeric text.
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, StorageError> {
        match self.value(name)? {
            SqlValue::Null => Ok(None),
            SqlValue::Integer(i) => Ok(Some(*i)),
            SqlValue::Text(t) => t
                .parse()
                .map(Some)
                .map_err(|_| bad(name, "is not an integer")),
            _ => Err(bad(name, "is not an integer")),
        }
    }

    /// An integer column that may not be NULL.
    pub fn int(&self, name: &str) -> Result<i64, StorageError> {
        self.opt_int(name)?
            .ok_or_else(|| bad(name, "is NULL where a value is needed"))
    }

    /// A non-negative integer column: sequences, counts, attempts.
    pub fn uint(&self, name: &str) -> Result<u64, StorageError> {
        u64::try_from(self.int(name)?).map_err(|_| bad(name, "is negative"))
    }

    /// A text column, or `None` for NULL.
    pub fn opt_text(&self, name: &str) -> Result<Option<String>, StorageError> {
        match self.value(name)? {
            SqlValue::Null => Ok(None),
            SqlValue::Text(t) => Ok(Some(t.clone())),
            _ => Err(bad(name, "is not text")),
        }
    }

    /// A text column that may not be NULL.
    pub fn text(&self, name: &str) -> Result<String, StorageError> {
        self.opt_text(name)?
            .ok_or_else(|| bad(name, "is NULL where a value is needed"))
    }

    /// A blob column (text is taken as its UTF-8 bytes).
    pub fn bytes(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        match self.value(name)? {
            SqlValue::Blob(b) => Ok(b.clone()),
            SqlValue::Text(t) => Ok(t.clone().into_bytes()),
            _ => Err(bad(name, "is not a blob")),
        }
    }
}

fn bad(column: &str, what: &str) -> StorageError {
    StorageError::Setup(format!("host table column `{column}` {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(values: Vec<SqlValue>) -> Rows {
        Rows {
            columns: vec!["n".into()],
            rows: vec![values],
        }
    }

    #[test]
    fn integers_read_as_integers_and_numeric_text() {
        let r = rows(vec![SqlValue::Integer(7)]);
        assert_eq!(first_row(&r).unwrap().uint("n").unwrap(), 7);
        let r = rows(vec![SqlValue::Text("12".into())]);
        assert_eq!(first_row(&r).unwrap().int("n").unwrap(), 12);
    }

    #[test]
    fn null_missing_and_mistyped_values_are_errors_not_zeroes() {
        let null = rows(vec![SqlValue::Null]);
        let row = first_row(&null).unwrap();
        assert_eq!(row.opt_int("n").unwrap(), None);
        assert!(row.int("n").is_err());
        assert!(
            row.int("other")
                .unwrap_err()
                .to_string()
                .contains("missing")
        );
        let text = rows(vec![SqlValue::Text("x".into())]);
        assert!(first_row(&text).unwrap().int("n").is_err());
        let negative = rows(vec![SqlValue::Integer(-1)]);
        assert!(first_row(&negative).unwrap().uint("n").is_err());
        let number = rows(vec![SqlValue::Integer(3)]);
        assert!(first_row(&number).unwrap().text("n").is_err());
    }
}
