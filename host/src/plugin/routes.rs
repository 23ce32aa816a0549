//! The route a request took inside a plugin, as its OpenAPI fragment names
//! it (`/orders/{id}`): a metric label whose values are bounded by what the
//! plugin documents, whatever paths clients send.
use crate::keys::Role;
use serde_json::Value;

/// The label for a path no documented route matches.
pub const UNDOCUMENTED: &str = "other";

/// The documented path template `path` matches in `openapi` (the plugin's
/// fragment, paths relative to its mount point), or [`UNDOCUMENTED`]. A
/// literal segment beats a `{parameter}` where both match.
pub fn template(openapi: &Value, path: &str) -> String {
    let wanted: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut best: Option<(usize, &str)> = None;
    for pattern in openapi["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(p, _)| p.as_str())
    {
        let parts: Vec<&str> = pattern.trim_matches('/').split('/').collect();
        if parts.len() != wanted.len() {
            continue;
        }
        let mut literals = 0;
        let matched = parts.iter().zip(&wanted).all(|(p, w)| {
            if p.starts_with('{') && p.ends_with('}') {
                !w.is_empty()
            } else {
                literals += usize::from(p == w);
                p == w
            }
        });
        if matched && best.is_none_or(|(n, _)| literals > n) {
            best = Some((literals, pattern));
        }
    }
    best.map_or_else(|| UNDOCUMENTED.to_owned(), |(_, p)| p.to_owned())
}

/// Who may call `method` on the documented route `template`: the
/// operation's `x-mercato-access` (`public`, `buyer` or `merchant`). A route
/// or method the plugin does not document, or documents without a word,
/// needs the merchant: forgetting a declaration never opens a route.
pub fn access(openapi: &Value, template: &str, method: &str) -> Role {
    let method = match method.to_ascii_lowercase().as_str() {
        "head" => "get".to_owned(),
        other => other.to_owned(),
    };
    openapi["paths"][template][method.as_str()]["x-mercato-access"]
        .as_str()
        .and_then(Role::parse)
        .unwrap_or(Role::Merchant)
}

/// The methods the plugin documents on route `template` (upper case, HEAD
/// with GET), or `None` for a route it does not document.
pub fn documented_methods(openapi: &Value, template: &str) -> Option<Vec<&'static str>> {
    let item = openapi["paths"].get(template)?.as_object()?;
    let mut methods = Vec::new();
    for (word, method) in [
        ("get", "GET"),
        ("get", "HEAD"),
        ("post", "POST"),
        ("put", "PUT"),
        ("patch", "PATCH"),
        ("delete", "DELETE"),
    ] {
        if item.contains_key(word) {
            methods.push(method);
        }
    }
    Some(methods)
}

/// The first operation whose `x-mercato-access` is not a known word, so a
/// typo is refused when the plugin loads instead of closing a route.
pub fn invalid_access(openapi: &Value) -> Option<String> {
    for (path, item) in openapi["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            match op.get("x-mercato-access") {
                None => {}
                Some(Value::String(word)) if Role::parse(word).is_some() => {}
                Some(other) => {
                    return Some(format!(
                        "{} {path}: x-mercato-access must be \"public\", \"buyer\" or \"merchant\", not {other}",
                        method.to_ascii_uppercase()
                    ));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_map_to_documented_templates_only() {
        let doc = json!({ "paths": { "/": {}, "/{code}": {}, "/{code}/quote": {}, "/search": {}, "/intents/{id}/confirm": {} } });
        assert_eq!(template(&doc, "/"), "/");
        assert_eq!(template(&doc, ""), "/");
        assert_eq!(template(&doc, "/SPRING10"), "/{code}");
        assert_eq!(
            template(&doc, "/search"),
            "/search",
            "a literal beats a parameter"
        );
        assert_eq!(template(&doc, "/X/quote"), "/{code}/quote");
        assert_eq!(
            template(&doc, "/intents/abc/confirm"),
            "/intents/{id}/confirm"
        );
        for unknown in ["/a/b/c/d", "/intents//confirm", "/X/quote/more"] {
            assert_eq!(template(&doc, unknown), UNDOCUMENTED, "{unknown}");
        }
        assert_eq!(template(&Value::Null, "/x"), UNDOCUMENTED);
    }

    #[test]
    fn access_is_the_declared_word_else_the_merchant() {
        let doc = json!({ "paths": {
            "/": { "get": { "x-mercato-access": "public" }, "post": { "x-mercato-access": "buyer" }, "delete": {} },
        } });
        assert_eq!(access(&doc, "/", "GET"), Role::Public);
        assert_eq!(access(&doc, "/", "HEAD"), Role::Public);
        assert_eq!(access(&doc, "/", "POST"), Role::Buyer);
        assert_eq!(access(&doc, "/", "DELETE"), Role::Merchant);
        assert_eq!(access(&doc, "/", "PUT"), Role::Merchant);
        assert_eq!(access(&doc, UNDOCUMENTED, "GET"), Role::Merchant);
        assert_eq!(invalid_access(&doc), None);
        assert_eq!(
            documented_methods(&doc, "/"),
            Some(vec!["GET", "HEAD", "POST", "DELETE"])
        );
        assert_eq!(documented_methods(&doc, UNDOCUMENTED), None);
        let typo = json!({ "paths": { "/x": { "get": { "x-mercato-access": "pubic" } } } });
        assert!(invalid_access(&typo).unwrap().contains("GET /x"));
    }
}
