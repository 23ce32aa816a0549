//! The PostgreSQL names of one plugin's database: its data schema, the host's
//! schema beside it and the two login roles.
//!
//! Every name derives from `namespace + plugin` (`-` becomes `_`), so the names
//! of two plugins must never meet: a plugin called `orders-host` would otherwise
//! be handed the host schema of `orders`, and `orders-owner` its owner role.
use super::super::StorageError;

/// PostgreSQL truncates longer identifiers (NAMEDATALEN - 1), which would make
/// two different plugins share a name.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// Suffix of the schema holding the host's tables.
const HOST_SUFFIX: &str = "_host";
/// Suffix of the role owning the plugin's schema (it runs the migrations).
const OWNER_SUFFIX: &str = "_owner";

/// The names of one plugin's database objects.
#[derive(Debug, Clone)]
pub(super) struct Names {
    /// The plugin's data schema; also the name of its runtime role.
    pub(super) schema: String,
    /// The host's schema beside it (owned by the admin).
    pub(super) host_schema: String,
    /// The role owning `schema`, used only to run migrations.
    pub(super) owner: String,
    /// The role the plugin's calls (and the host's work on its database) log in as.
    pub(super) runtime: String,
}

/// The schema (and runtime role) name of `plugin` under `namespace`.
pub fn schema_name(namespace: &str, plugin: &str) -> String {
    format!("{namespace}{}", plugin.replace('-', "_"))
}

impl Names {
    /// The names for `plugin`, or why they cannot be used.
    pub(super) fn new(namespace: &str, plugin: &str) -> Result<Names, StorageError> {
        check_namespace(namespace)?;
        for suffix in ["-host", "-owner"] {
            if plugin.ends_with(suffix) {
                return Err(StorageError::Setup(format!(
                    "plugin `{plugin}` cannot be stored in PostgreSQL: names ending in `{suffix}` are \
                     reserved for the host schema and owner role of another plugin; rename the plugin"
                )));
            }
        }
        let schema = schema_name(namespace, plugin);
        let names = Names {
            host_schema: format!("{schema}{HOST_SUFFIX}"),
            owner: format!("{schema}{OWNER_SUFFIX}"),
            runtime: schema.clone(),
            schema,
        };
        // The owner role has the longest suffix.
        if names.owner.len() > MAX_IDENTIFIER_BYTES {
            return Err(StorageError::Setup(format!(
                "plugin `{plugin}` under namespace `{namespace}` needs the PostgreSQL name `{}` \
                 ({} bytes), longer than PostgreSQL's limit of {MAX_IDENTIFIER_BYTES}; shorten \
                 the namespace (storage.namespace) or the plugin name",
                names.owner,
                names.owner.len()
            )));
        }
        Ok(names)
    }

    /// The runtime role's search path: its own schema, then the host's (so a
    /// plugin may read its outbox by its plain name, as on SQLite).
    pub(super) fn search_path(&self) -> String {
        format!("{},{}", quote(&self.schema), quote(&self.host_schema))
    }
}

/// `name` as a quoted identifier. Every name here is checked to be plain
/// lower-case ASCII, so quoting only guards against keywords.
pub(super) fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

fn check_namespace(namespace: &str) -> Result<(), StorageError> {
    let plain = namespace
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !namespace.starts_with(|c: char| c.is_ascii_digit());
    if !plain || namespace.starts_with("pg_") {
        return Err(StorageError::Setup(format!(
            "storage.namespace `{namespace}` must be lower-case letters, digits and `_`, not start \
             with a digit or `pg_` (it prefixes PostgreSQL schema and role names)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_namespace_and_plugin() {
        let n = Names::new("mercato_", "stock-levels").unwrap();
        assert_eq!(n.schema, "mercato_stock_levels");
        assert_eq!(n.runtime, "mercato_stock_levels");
        assert_eq!(n.host_schema, "mercato_stock_levels_host");
        assert_eq!(n.owner, "mercato_stock_levels_owner");
        assert_eq!(
            n.search_path(),
            "\"mercato_stock_levels\",\"mercato_stock_levels_host\""
        );
    }

    #[test]
    fn names_that_would_collide_or_be_truncated_are_refused() {
        for plugin in ["orders-host", "orders-owner"] {
            let e = Names::new("mercato_", plugin).unwrap_err().to_string();
            assert!(e.contains("reserved"), "{e}");
        }
        let longest = "a".repeat(48);
        assert!(Names::new("mercato_", &longest).is_ok());
        let e = Names::new("mercato_x_", &longest).unwrap_err().to_string();
        assert!(e.contains("63") && e.contains("shorten"), "{e}");
        for ns in ["Mercato_", "pg_", "1x", "a-b", "a\"b"] {
            assert!(Names::new(ns, "orders").is_err(), "{ns}");
        }
        assert!(Names::new("", "orders").is_ok());
    }
}
