//! The read model's tables: every SQL statement of the plugin lives in the
//! submodules, one per view. Statements are portable (SQLite and
//! PostgreSQL): `$n` placeholders, `ON CONFLICT`, row-value comparisons,
//! `CASE` rather than `MAX(a, b)` / `GREATEST`.
pub mod matching;
pub mod orders;
pub mod products;
pub mod sellers;

use mercato_sdk::SqlValue;

/// A statement's conditions and parameters, numbered as they are added.
#[derive(Debug, Default, Clone)]
pub struct Sql {
    conditions: Vec<String>,
    params: Vec<SqlValue>,
}

impl Sql {
    /// Adds a parameter; returns its placeholder (`$n`).
    pub fn bind(&mut self, value: impl Into<SqlValue>) -> String {
        self.params.push(value.into());
        format!("${}", self.params.len())
    }

    /// Adds a condition (its placeholders from [`Sql::bind`]).
    pub fn and(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    /// ` WHERE a AND b`, or nothing.
    pub fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        }
    }

    /// The parameters, in placeholder order.
    pub fn params(&self) -> &[SqlValue] {
        &self.params
    }
}

/// Takes the join lock for the rest of the transaction (the one row of
/// `seller_allocation_lock`): every handler that joins facts from two
/// sources (an order and its shipments, an order's lines and its payments,
/// a product and its SKU's stock) takes it before reading, so on PostgreSQL
/// two of them running at once cannot each miss the other's uncommitted half
/// and the views do not depend on how the sources' streams interleave.
pub fn lock_joins() -> Result<(), mercato_sdk::Error> {
    mercato_sdk::db::execute(
        "UPDATE seller_allocation_lock SET taken = taken + 1 WHERE id = 1",
        &[],
    )?;
    Ok(())
}

/// Rows per multi-row `INSERT`: few host calls, far below either backend's
/// parameter limit.
pub const ROWS_PER_INSERT: usize = 100;

/// `($1, $2), ($3, $4), …` for `rows` rows of `width` values, numbered from 1.
pub fn values_list(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `updated_at` moved to `$n` if that is later: events from different
/// sources arrive in any order, and a row shows its latest change.
pub fn later_of_updated_at(placeholder: &str) -> String {
    format!(
        "updated_at = CASE WHEN updated_at < {placeholder} THEN {placeholder} ELSE updated_at END"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut sql = Sql::default();
        let a = sql.bind("x");
        let b = sql.bind(2i64);
        sql.and(format!("a = {a}"));
        sql.and(format!("b >= {b}"));
        assert_eq!(sql.where_clause(), " WHERE a = $1 AND b >= $2");
        assert_eq!(sql.params().len(), 2);
        assert_eq!(Sql::default().where_clause(), "");
    }

    #[test]
    fn value_lists_number_rows_then_columns() {
        assert_eq!(values_list(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_list(1, 1), "($1)");
    }
}
