//! The manifest: what the host is told.
use super::*;
use serde_json::Value;

fn manifest() -> mercato_sdk::bindings::exports::mercato::plugin::plugin::Manifest {
    Search::manifest().into_wit()
}

#[test]
fn it_is_a_read_model_of_the_events_it_names() {
    let m = manifest();
    assert_eq!(m.name, "search");
    assert!(m.read_model);
    assert_eq!(
        m.subscriptions,
        [
            "products.*",
            "inventory.StockLevelChanged",
            "orders.*",
            "payments.PaymentCaptured",
            "payments.PaymentRefunded",
            "shipping.*",
        ]
    );
}

#[test]
fn migrations_cover_both_backends_with_portable_types() {
    let migrations = manifest().migrations;
    let files: Vec<&str> = migrations.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        files,
        [
            "0001_views.sql",
            "0002_search_terms.sqlite.sql",
            "0002_search_terms.postgres.sql",
            "0003_ranking.sql",
        ]
    );
    for (file, sql) in &migrations {
        let code: Vec<&str> = sql
            .lines()
            .map(|l| l.split("--").next().unwrap_or(""))
            .collect();
        let upper = code.join("\n").to_uppercase();
        for banned in [
            "AUTOINCREMENT",
            "SERIAL",
            "FTS5",
            "TSVECTOR",
            "BOOLEAN",
            "TIMESTAMP",
        ] {
            assert!(!upper.contains(banned), "{file} uses {banned}");
        }
    }
    // The word index is ordered by code point on both backends.
    assert!(migrations[2].1.contains("term TEXT COLLATE \"C\" NOT NULL"));
    assert!(migrations[1].1.contains("term TEXT NOT NULL"));
}

#[test]
fn openapi_documents_every_route_with_resolvable_schemas() {
    let doc: Value = serde_json::from_str(&manifest().openapi).unwrap();
    for path in ["/products", "/orders", "/sellers/{seller_id}/dashboard"] {
        let op = &doc["paths"][path]["get"];
        assert!(op.is_object(), "GET {path} undocumented");
        assert!(op["responses"]["200"].is_object(), "GET {path} 200");
        assert!(op["responses"]["400"].is_object(), "GET {path} 400");
    }
    assert!(doc["paths"]["/sellers/{seller_id}/dashboard"]["get"]["responses"]["404"].is_object());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let target = reference.split('"').next().unwrap();
        let name = target.strip_prefix("#/components/schemas/").unwrap();
        assert!(schemas.contains_key(name), "dangling {target}");
    }
    let documented: Vec<&str> = doc["paths"]["/products"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for filter in domain::query::PRODUCT_FILTERS {
        assert!(documented.contains(filter), "{filter} undocumented");
    }
    assert!(documented.contains(&"attr.<name>"));
}
