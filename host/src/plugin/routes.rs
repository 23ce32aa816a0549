//! The route a request took inside a plugin, as its OpenAPI fragment names
//! it (`/orders/{id}`): a metric label whose values are bounded by what the
//! plugin documents, whatever paths clients send.
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
}
