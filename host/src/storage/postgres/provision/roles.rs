//! The plugin's roles: the owner (migrations) and the runtime role (calls),
//! their passwords, what they may never hold (temporary tables, foreign
//! ownership of the host schema) and the grants on the plugin's objects.
use super::{exec, exec_all};
use crate::storage::StorageError;
use crate::storage::postgres::names::{Names, quote};
use sqlx::{Postgres, Row, Transaction};

pub(super) fn password() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The host schema must be the admin's: a plugin role owning it could change
/// the guard.
pub(super) async fn refuse_foreign_owner(
    tx: &mut Transaction<'_, Postgres>,
    host_schema: &str,
    names: &Names,
) -> Result<(), StorageError> {
    let owner: Option<String> = sqlx::query_scalar(
        "SELECT pg_catalog.pg_get_userbyid(nspowner)::text FROM pg_catalog.pg_namespace WHERE nspname = $1",
    )
    .bind(host_schema)
    .fetch_optional(&mut **tx)
    .await?;
    match owner {
        Some(owner) if owner == names.owner || owner == names.runtime => {
            Err(StorageError::Setup(format!(
                "schema `{host_schema}` is owned by the plugin role `{owner}`; the host schema must \
                 belong to the admin (drop it, or run as a superuser to repair it)"
            )))
        }
        _ => Ok(()),
    }
}

/// Creates `role` or gives it a fresh password, refusing a role of that name
/// that holds powers a plugin must never have (it is not ours).
pub(super) async fn ensure_role(
    tx: &mut Transaction<'_, Postgres>,
    role: &str,
    password: &str,
    owner: bool,
    superuser: bool,
) -> Result<(), StorageError> {
    let existing = sqlx::query(
        "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls AS powerful, \
                rolname = pg_catalog.current_user() AS is_admin \
         FROM pg_catalog.pg_roles WHERE rolname = $1",
    )
    .bind(role)
    .fetch_optional(&mut **tx)
    .await?;
    let inherit = if owner { "NOINHERIT" } else { "INHERIT" };
    let quoted = quote(role);
    match existing {
        None => {
            exec(
                tx,
                &format!(
                    "CREATE ROLE {quoted} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
                     NOBYPASSRLS {inherit} PASSWORD '{password}'"
                ),
            )
            .await
        }
        Some(row)
            if row.try_get::<bool, _>("powerful")? || row.try_get::<bool, _>("is_admin")? =>
        {
            Err(StorageError::Setup(format!(
                "role `{role}` already exists with powers a plugin role must not have (superuser, \
                 CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS, or it is the admin itself); it is \
                 not a Mercato plugin role: choose another storage.namespace"
            )))
        }
        Some(_) => {
            // Attributes other than the password need a superuser to change.
            let attributes = if superuser {
                format!("NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS {inherit} ")
            } else {
                String::new()
            };
            exec(
                tx,
                &format!("ALTER ROLE {quoted} WITH LOGIN {attributes}PASSWORD '{password}'"),
            )
            .await
        }
    }
}

/// Plugin roles get no temporary tables: a temporary table is created in a
/// schema of its own, outside the plugin's, and one named like a host table
/// would come first on the search path.
pub(super) async fn revoke_temp(
    tx: &mut Transaction<'_, Postgres>,
    names: &Names,
    superuser: bool,
) -> Result<(), StorageError> {
    let database: String =
        sqlx::query_scalar("SELECT pg_catalog.quote_ident(pg_catalog.current_database())")
            .fetch_one(&mut **tx)
            .await?;
    let holders = temp_holders(tx, names).await?;
    if holders.is_empty() {
        return Ok(());
    }
    if !superuser {
        exec(
            tx,
            &format!("GRANT TEMPORARY ON DATABASE {database} TO CURRENT_USER"),
        )
        .await?;
    }
    let (runtime, owner) = (quote(&names.runtime), quote(&names.owner));
    exec(
        tx,
        &format!("REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC, {runtime}, {owner}"),
    )
    .await?;
    let still = temp_holders(tx, names).await?;
    if !still.is_empty() {
        return Err(StorageError::Setup(format!(
            "could not revoke TEMPORARY on database {database} from {}: run Mercato's admin \
             connection as the database owner or a superuser, or revoke it yourself",
            still.join(", ")
        )));
    }
    Ok(())
}

/// Which of PUBLIC and the plugin's roles may create temporary tables.
pub(super) async fn temp_holders(
    tx: &mut Transaction<'_, Postgres>,
    names: &Names,
) -> Result<Vec<String>, StorageError> {
    let mut holders = Vec::new();
    for role in ["public", &names.runtime, &names.owner] {
        let may: bool = sqlx::query_scalar(
            "SELECT pg_catalog.has_database_privilege($1, pg_catalog.current_database(), 'TEMPORARY')",
        )
        .bind(role)
        .fetch_one(&mut **tx)
        .await?;
        if may {
            holders.push(role.to_owned());
        }
    }
    Ok(holders)
}

/// Objects of the earlier layout were created by the admin; the owner role
/// takes them over so that later migrations can alter them.
pub(super) async fn hand_over_plugin_objects(
    tx: &mut Transaction<'_, Postgres>,
    names: &Names,
) -> Result<(), StorageError> {
    let owner = quote(&names.owner);
    // Relations (sequences owned by a column follow their table), routines,
    // and standalone types, in the plugin's schema and not yet the owner's
    // (`target`, looked up once). `::regclass` etc. print schema-qualified
    // names under the admin's search path (pg_catalog only).
    let objects: Vec<(String, String)> = sqlx::query_as(
        "WITH target AS (SELECT n.oid AS schema_oid, r.oid AS owner_oid \
                         FROM pg_catalog.pg_namespace n, pg_catalog.pg_roles r \
                         WHERE n.nspname = $1 AND r.rolname = $2) \
         SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' \
                    WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, \
                c.oid::pg_catalog.regclass::pg_catalog.text \
         FROM pg_catalog.pg_class c, target \
         WHERE c.relnamespace = target.schema_oid AND c.relowner <> target.owner_oid \
           AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
           AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                   AND d.objid = c.oid AND d.deptype IN ('a', 'i'))) \
         UNION ALL \
         SELECT CASE p.prokind WHEN 'a' THEN 'AGGREGATE' ELSE 'ROUTINE' END, \
                p.oid::pg_catalog.regprocedure::pg_catalog.text \
         FROM pg_catalog.pg_proc p, target \
         WHERE p.pronamespace = target.schema_oid AND p.proowner <> target.owner_oid \
         UNION ALL \
         SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, \
                t.oid::pg_catalog.regtype::pg_catalog.text \
         FROM pg_catalog.pg_type t, target \
         WHERE t.typnamespace = target.schema_oid AND t.typowner <> target.owner_oid \
           AND t.typtype IN ('d', 'e', 'r', 'c') \
           AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_catalog.pg_class WHERE oid = t.typrelid) = 'c')",
    )
    .bind(&names.schema)
    .bind(&names.owner)
    .fetch_all(&mut **tx)
    .await?;
    for (kind, object) in objects {
        exec(tx, &format!("ALTER {kind} {object} OWNER TO {owner}")).await?;
    }
    Ok(())
}

pub(super) async fn grant_on_plugin_objects(
    tx: &mut Transaction<'_, Postgres>,
    names: &Names,
) -> Result<(), StorageError> {
    let (schema, runtime) = (quote(&names.schema), quote(&names.runtime));
    exec_all(
        tx,
        [
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {runtime}"
            ),
            format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {runtime}"),
        ],
    )
    .await
}
