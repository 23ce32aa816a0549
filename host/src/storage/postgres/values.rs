//! Values between plugins and PostgreSQL: binding `SqlValue` parameters and
//! decoding result rows into them.
use super::super::StorageError;
use crate::bindings::SqlValue;
use sqlx::postgres::{PgArguments, PgRow, PgTypeInfo};
use sqlx::{Arguments, Column, Postgres, Row, TypeInfo, ValueRef};

/// SQL NULL whose type the server infers from context (OID 0), so a NULL can be
/// bound to a column of any type.
struct UntypedNull;

impl sqlx::Type<Postgres> for UntypedNull {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(0))
    }
}

impl sqlx::Encode<'_, Postgres> for UntypedNull {
    fn encode_by_ref(
        &self,
        _buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        Ok(sqlx::encode::IsNull::Yes)
    }
}

pub(super) fn arguments(params: &[SqlValue]) -> Result<PgArguments, StorageError> {
    let mut args = PgArguments::default();
    for p in params {
        let added = match p {
            SqlValue::Null => args.add(UntypedNull),
            SqlValue::Integer(i) => args.add(*i),
            SqlValue::Real(r) => args.add(*r),
            SqlValue::Text(t) => args.add(t.clone()),
            SqlValue::Blob(b) => args.add(b.clone()),
        };
        added.map_err(|e| StorageError::Setup(format!("binding parameter: {e}")))?;
    }
    Ok(args)
}

pub(super) fn decode_row(row: &PgRow) -> Result<Vec<SqlValue>, StorageError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        if row.try_get_raw(i)?.is_null() {
            values.push(SqlValue::Null);
            continue;
        }
        let value = match column.type_info().name() {
            "INT2" => SqlValue::Integer(row.try_get::<i16, _>(i)?.into()),
            "INT4" => SqlValue::Integer(row.try_get::<i32, _>(i)?.into()),
            "INT8" => SqlValue::Integer(row.try_get::<i64, _>(i)?),
            "FLOAT4" => SqlValue::Real(row.try_get::<f32, _>(i)?.into()),
            "FLOAT8" => SqlValue::Real(row.try_get::<f64, _>(i)?),
            "BOOL" => SqlValue::Integer(row.try_get::<bool, _>(i)?.into()),
            "BYTEA" => SqlValue::Blob(row.try_get::<Vec<u8>, _>(i)?),
            "NUMERIC" => SqlValue::Text(row.try_get::<rust_decimal::Decimal, _>(i)?.to_string()),
            "UUID" => SqlValue::Text(row.try_get::<uuid::Uuid, _>(i)?.to_string()),
            "JSON" | "JSONB" => SqlValue::Text(row.try_get::<serde_json::Value, _>(i)?.to_string()),
            "TIMESTAMPTZ" => SqlValue::Text(
                row.try_get::<time::OffsetDateTime, _>(i)?
                    .format(&time::format_description::well_known::Rfc3339)
                    .map_err(|e| StorageError::Setup(e.to_string()))?,
            ),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => {
                SqlValue::Text(row.try_get::<String, _>(i)?)
            }
            other => {
                return Err(StorageError::Setup(format!(
                    "column `{}` has type {other}, which plugins cannot read; cast it in the query (e.g. `{}::text`)",
                    column.name(),
                    column.name()
                )));
            }
        };
        values.push(value);
    }
    Ok(values)
}

/// Bytes a decoded value holds, for the query byte budget.
pub(super) fn value_bytes(value: &SqlValue) -> usize {
    match value {
        SqlValue::Null => 0,
        SqlValue::Integer(_) | SqlValue::Real(_) => 8,
        SqlValue::Text(t) => t.len(),
        SqlValue::Blob(b) => b.len(),
    }
}
