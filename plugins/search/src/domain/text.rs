//! The word index and the ranking: how names, descriptions and attribute
//! values become terms, how a query word finds the terms it is a prefix of,
//! and how matches are ordered. Pure, so the same rules index and rank.
use serde_json::Value;

/// Longest indexed term, in characters. Longer words are cut, in the index
/// and in queries alike, so a long query word still finds its word.
pub const MAX_TERM_CHARS: usize = 40;
/// Most terms indexed per product (name first, then attributes, then the
/// description): bounds the index a 16 KiB attributes object can make.
pub const MAX_TERMS_PER_PRODUCT: usize = 1000;

/// Where a term was found, and its weight (stored with the term; the ranking
/// tiers below follow the same order: name, then the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Name,
    Attribute,
    Description,
}

impl Field {
    /// The `field` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Attribute => "attribute",
            Field::Description => "description",
        }
    }

    /// The `weight` column's value.
    pub fn weight(self) -> i64 {
        match self {
            Field::Name => 3,
            Field::Attribute => 2,
            Field::Description => 1,
        }
    }
}

/// The words of `text`, in order: runs of letters and digits (any script),
/// lower-cased, each cut to [`MAX_TERM_CHARS`]. Everything else separates
/// words, so `T-shirt` is `t`, `shirt` and `50%` is `50`.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase().chars().take(MAX_TERM_CHARS).collect())
        .collect()
}

/// One row of `product_search_terms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub term: String,
    pub field: Field,
}

/// The terms a product is found by: the words of its name, of its attribute
/// values (strings, numbers and booleans, inside arrays and objects too; not
/// the attribute names) and of its description; each (field, word) once, at
/// most [`MAX_TERMS_PER_PRODUCT`].
pub fn index_terms(name: &str, description: Option<&str>, attributes: &Value) -> Vec<Term> {
    let mut attribute_text = Vec::new();
    scalar_texts(attributes, &mut attribute_text);
    let sources = [(Field::Name, name.to_owned())]
        .into_iter()
        .chain(attribute_text.into_iter().map(|t| (Field::Attribute, t)))
        .chain(description.map(|d| (Field::Description, d.to_owned())));
    let mut terms: Vec<Term> = Vec::new();
    for (field, text) in sources {
        for term in words(&text) {
            if terms.len() == MAX_TERMS_PER_PRODUCT {
                return terms;
            }
            if !terms.iter().any(|t| t.field == field && t.term == term) {
                terms.push(Term { term, field });
            }
        }
    }
    terms
}

/// The text of every scalar inside `value`.
fn scalar_texts(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Bool(b) => out.push(b.to_string()),
        Value::Array(items) => items.iter().for_each(|v| scalar_texts(v, out)),
        Value::Object(map) => map.values().for_each(|v| scalar_texts(v, out)),
        Value::Null => {}
    }
}

/// Longest attribute value kept as a facet / filter value, in characters.
pub const MAX_FACET_VALUE_CHARS: usize = 200;

/// The (name, value) pairs of `attributes` for facets and `attr.<name>`
/// filters: a string as it is, a number or boolean as JSON text, each scalar
/// element of an array; objects, nulls and values over
/// [`MAX_FACET_VALUE_CHARS`] are left out. Each pair once.
pub fn facet_values(attributes: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let Value::Object(map) = attributes else {
        return out;
    };
    for (name, value) in map {
        let values: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for v in values {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            let pair = (name.clone(), text);
            if pair.1.chars().count() <= MAX_FACET_VALUE_CHARS && !out.contains(&pair) {
                out.push(pair);
            }
        }
    }
    out
}

/// The smallest string greater than every string starting with `prefix`
/// in code-point order: `prefix` with its last character moved one code point
/// up (a last `char::MAX` is dropped and the one before it moved instead).
/// `None` when there is no such bound (an empty prefix, or only `char::MAX`).
/// `term >= prefix AND term < bound` is then exactly "term starts with prefix".
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// How well a product's name answers a query, best first. A product is a
/// match only when every query word is a word, or the prefix of a word, of
/// its name, description or attribute values; the tier says how much of that
/// the name alone does. The SQL computes it (`store::matching`), from the
/// name's terms and [`name_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// The name is the query, word for word.
    ExactName = 0,
    /// Every query word is a whole word of the name.
    NameWords = 1,
    /// Every query word is a word or the prefix of a word of the name.
    NamePrefix = 2,
    /// Some query word is found only in the description or the attributes
    /// (and every product when the query has no words).
    Elsewhere = 3,
}

impl Tier {
    /// The tier as the SQL numbers it (ascending: best first).
    pub fn sql(self) -> i64 {
        self as i64
    }
}

/// A name as its words, space-separated: a query whose words joined the same
/// way equal it names the product exactly ([`Tier::ExactName`]). Words hold no
/// spaces, so equal keys are equal word sequences.
pub fn name_key(name: &str) -> String {
    words(name).join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn words_are_lower_cased_runs_of_letters_and_digits() {
        assert_eq!(
            words("Red T-Shirt, size XL!"),
            ["red", "t", "shirt", "size", "xl"]
        );
        assert_eq!(words("50% off"), ["50", "off"]);
        assert_eq!(words("Crème BRÛLÉE"), ["crème", "brûlée"]);
        assert_eq!(words("日本 茶"), ["日本", "茶"]);
        assert_eq!(words("  --  "), Vec::<String>::new());
        assert_eq!(words("snake_case"), ["snake", "case"]);
    }

    #[test]
    fn long_words_are_cut_alike_in_the_index_and_in_queries() {
        let long = "a".repeat(60);
        assert_eq!(words(&long), ["a".repeat(MAX_TERM_CHARS)]);
        let cut = &words(&long)[0];
        assert_eq!(cut.chars().count(), MAX_TERM_CHARS);
    }

    #[test]
    fn a_product_is_indexed_by_name_attribute_values_and_description() {
        let terms = index_terms(
            "Red Mug",
            Some("A red mug, dishwasher safe."),
            &json!({ "color": "Red", "size": ["S", "M"], "volume_ml": 350, "eco": true, "box": { "kind": "Gift" }, "x": null }),
        );
        let of = |field: Field| -> Vec<&str> {
            terms
                .iter()
                .filter(|t| t.field == field)
                .map(|t| t.term.as_str())
                .collect()
        };
        assert_eq!(of(Field::Name), ["red", "mug"]);
        // Attribute names are not indexed; values of every shape are.
        let mut attribute = of(Field::Attribute);
        attribute.sort();
        assert_eq!(attribute, ["350", "gift", "m", "red", "s", "true"]);
        // Each (field, word) once: "red" and "mug" again under description.
        assert_eq!(
            of(Field::Description),
            ["a", "red", "mug", "dishwasher", "safe"]
        );
        assert_eq!(
            (
                Field::Name.weight(),
                Field::Attribute.weight(),
                Field::Description.weight()
            ),
            (3, 2, 1)
        );
    }

    #[test]
    fn the_index_of_one_product_is_bounded() {
        let description: String = (0..3000).map(|i| format!("w{i} ")).collect();
        let terms = index_terms("Name", Some(&description), &json!({}));
        assert_eq!(terms.len(), MAX_TERMS_PER_PRODUCT);
        assert_eq!(
            terms[0],
            Term {
                term: "name".into(),
                field: Field::Name
            }
        );
    }

    #[test]
    fn facet_values_are_scalars_and_array_elements_as_text() {
        let values = facet_values(&json!({
            "color": "Red", "size": ["S", "M", "S"], "volume_ml": 350, "eco": false,
            "box": { "kind": "Gift" }, "none": null, "long": "x".repeat(201),
        }));
        let pairs: Vec<(&str, &str)> = values
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("color", "Red"),
                ("eco", "false"),
                ("size", "S"),
                ("size", "M"),
                ("volume_ml", "350")
            ]
        );
        assert!(facet_values(&json!([1, 2])).is_empty());
    }

    #[test]
    fn the_prefix_bound_is_the_next_string_after_every_extension() {
        assert_eq!(prefix_upper_bound("mug").as_deref(), Some("muh"));
        assert_eq!(prefix_upper_bound("a9").as_deref(), Some("a:"));
        assert_eq!(
            prefix_upper_bound("caf\u{e9}").as_deref(),
            Some("caf\u{ea}")
        );
        assert_eq!(prefix_upper_bound("\u{d7ff}").as_deref(), Some("\u{e000}"));
        assert_eq!(prefix_upper_bound("a\u{10ffff}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("\u{10ffff}"), None);
        // Exactly the terms starting with the prefix fall in [prefix, bound).
        let bound = prefix_upper_bound("mug").unwrap();
        for (term, inside) in [
            ("mug", true),
            ("mugs", true),
            ("mug\u{10ffff}", true),
            ("muh", false),
            ("mua", false),
            ("mu", false),
            ("n", false),
        ] {
            assert_eq!(term >= "mug" && term < bound.as_str(), inside, "{term}");
        }
    }

    #[test]
    fn a_name_key_is_its_words_so_the_exact_query_equals_it() {
        assert_eq!(name_key("Red  T-Shirt!"), "red t shirt");
        assert_eq!(name_key("Red T-Shirt"), words("red t shirt").join(" "));
        assert_ne!(name_key("Red Mug"), words("mug red").join(" "));
        assert_eq!(name_key("--"), "");
        assert!(Tier::ExactName < Tier::NameWords);
        assert_eq!(
            [
                Tier::ExactName,
                Tier::NameWords,
                Tier::NamePrefix,
                Tier::Elsewhere
            ]
            .map(Tier::sql),
            [0, 1, 2, 3]
        );
    }
}
