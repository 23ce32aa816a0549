//! One product search as SQL: the products every query word finds, their
//! relevance tier, the filters, and keyset paging over any ordering.
//!
//! The match is driven from the word index: per distinct query word, one
//! grouped range scan of `product_search_terms` gives each product that has
//! a term starting with the word, and the best place it was found (`lvl`:
//! 0 the word itself in the name, 1 a longer name word, 2 elsewhere). The
//! words' scans are joined on the product, so a product matches only when
//! every word finds it, and the tier ([`Tier`]) follows from the levels and
//! the name key. Ranking, paging and facets all run in the database: only
//! one page and the facet counts cross into the plugin.
use super::Sql;
use crate::domain::query::ProductSearch;
use crate::domain::text::{Tier, prefix_upper_bound};
use mercato_sdk::SqlValue;

/// A search's match as a subquery: `FROM … WHERE …`, with its parameters.
#[derive(Debug, Clone)]
pub struct Matched {
    /// The filters (conditions on `p`, the view) and every parameter bound.
    pub sql: Sql,
    /// The view `p`, joined to one scan `w<i>` per query word.
    from: String,
    /// The tier of `p` for the query (a number, best first).
    tier: String,
}

impl Matched {
    /// The match, its filters applied (`with_filters`) or only its words: a
    /// cursor keeps its place when its product has since left a filter (sold
    /// out, repriced), as words never change for a product.
    pub fn new(search: &ProductSearch, with_filters: bool) -> Matched {
        let mut sql = Sql::default();
        let words = search.distinct_words();
        let mut from = String::new();
        let mut levels = Vec::new();
        for (i, word) in words.iter().enumerate() {
            let w = sql.bind(word.as_str());
            let range = match prefix_upper_bound(word) {
                Some(bound) => format!("t.term >= {w} AND t.term < {}", sql.bind(bound)),
                None => format!("t.term >= {w}"),
            };
            let scan = format!(
                "(SELECT t.product_id, MIN(CASE WHEN t.field <> 'name' THEN 2 WHEN t.term = {w} THEN 0 ELSE 1 END) AS lvl \
                 FROM product_search_terms t WHERE {range} GROUP BY t.product_id) w{i}"
            );
            if i == 0 {
                from = scan;
            } else {
                from.push_str(&format!(" JOIN {scan} ON w{i}.product_id = w0.product_id"));
            }
            levels.push(format!("w{i}.lvl"));
        }
        let tier = if words.is_empty() {
            from = "product_search_view p".to_owned();
            Tier::Elsewhere.sql().to_string()
        } else {
            from.push_str(" JOIN product_search_view p ON p.product_id = w0.product_id");
            let key = sql.bind(search.words.join(" "));
            let all_at_most = |lvl: i64| {
                levels
                    .iter()
                    .map(|l| format!("{l} <= {lvl}"))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            };
            format!(
                "CASE WHEN p.name_key = {key} THEN {} WHEN {} THEN {} WHEN {} THEN {} ELSE {} END",
                Tier::ExactName.sql(),
                all_at_most(0),
                Tier::NameWords.sql(),
                all_at_most(1),
                Tier::NamePrefix.sql(),
                Tier::Elsewhere.sql(),
            )
        };
        if with_filters {
            filters(search, &mut sql);
        }
        Matched { sql, from, tier }
    }

    /// `SELECT <columns>, <tier> AS tier FROM … WHERE …` (its placeholders
    /// are `self.sql`'s; bind more on that to extend the statement).
    pub fn ranked(&self, columns: &str) -> String {
        format!(
            "SELECT {columns}, {} AS tier FROM {}{}",
            self.tier,
            self.from,
            self.sql.where_clause()
        )
    }
}

fn filters(search: &ProductSearch, sql: &mut Sql) {
    if let Some(in_stock) = search.in_stock {
        let v = sql.bind(in_stock);
        sql.and(format!("p.in_stock = {v}"));
    }
    if let Some(min) = search.price_min_minor {
        let v = sql.bind(min);
        sql.and(format!("p.price_minor >= {v}"));
    }
    if let Some(max) = search.price_max_minor {
        let v = sql.bind(max);
        sql.and(format!("p.price_minor <= {v}"));
    }
    if let Some(currency) = &search.currency {
        let v = sql.bind(currency.as_str());
        sql.and(format!("p.currency = {v}"));
    }
    if let Some(seller) = &search.seller_id {
        let v = sql.bind(seller.as_str());
        sql.and(format!("p.seller_id = {v}"));
    }
    for (name, value) in &search.attributes {
        let (n, v) = (sql.bind(name.as_str()), sql.bind(value.as_str()));
        sql.and(format!(
            "p.product_id IN (SELECT a.product_id FROM product_search_attributes a WHERE a.name = {n} AND a.value = {v})"
        ));
    }
}

/// One key of an ordering: a column of the page's subquery `r`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub column: &'static str,
    pub descending: bool,
}

/// `ORDER BY` over `table` (an alias of the page's rows) for `keys`,
/// turned round when going back.
pub fn order_by(table: &str, keys: &[Key], forward: bool) -> String {
    keys.iter()
        .map(|k| {
            let direction = if k.descending == forward {
                "DESC"
            } else {
                "ASC"
            };
            format!("{table}.{} {direction}", k.column)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows of `r` beyond the cursor's key `values` (one per key) in the
/// direction of travel. Keys of one direction compare as a row value (an
/// index serves it); mixed ones as the lexicographic `OR` of their prefixes.
pub fn beyond(sql: &mut Sql, keys: &[Key], values: Vec<SqlValue>, forward: bool) -> String {
    let marks: Vec<String> = values.into_iter().map(|v| sql.bind(v)).collect();
    let op = |k: &Key| if k.descending == forward { "<" } else { ">" };
    if keys.iter().all(|k| k.descending == keys[0].descending) {
        let columns: Vec<String> = keys.iter().map(|k| format!("r.{}", k.column)).collect();
        return format!(
            "({}) {} ({})",
            columns.join(", "),
            op(&keys[0]),
            marks.join(", ")
        );
    }
    let alternatives: Vec<String> = (0..keys.len())
        .map(|i| {
            let mut parts: Vec<String> = (0..i)
                .map(|j| format!("r.{} = {}", keys[j].column, marks[j]))
                .collect();
            parts.push(format!(
                "r.{} {} {}",
                keys[i].column,
                op(&keys[i]),
                marks[i]
            ));
            format!("({})", parts.join(" AND "))
        })
        .collect();
    format!("({})", alternatives.join(" OR "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEVANCE: [Key; 3] = [
        Key {
            column: "tier",
            descending: false,
        },
        Key {
            column: "created_at",
            descending: true,
        },
        Key {
            column: "product_id",
            descending: true,
        },
    ];

    #[test]
    fn mixed_keys_page_lexicographically_both_ways() {
        let mut sql = Sql::default();
        let forward = beyond(
            &mut sql,
            &RELEVANCE,
            vec![1i64.into(), "t".into(), "p".into()],
            true,
        );
        assert_eq!(
            forward,
            "((r.tier > $1) OR (r.tier = $1 AND r.created_at < $2) OR (r.tier = $1 AND r.created_at = $2 AND r.product_id < $3))"
        );
        assert_eq!(
            order_by("r", &RELEVANCE, true),
            "r.tier ASC, r.created_at DESC, r.product_id DESC"
        );
        let back = beyond(
            &mut sql,
            &RELEVANCE,
            vec![1i64.into(), "t".into(), "p".into()],
            false,
        );
        assert!(back.starts_with("((r.tier < $4) OR (r.tier = $4 AND r.created_at > $5)"));
        assert_eq!(
            order_by("r", &RELEVANCE, false),
            "r.tier DESC, r.created_at ASC, r.product_id ASC"
        );
    }

    #[test]
    fn keys_of_one_direction_compare_as_a_row() {
        let price = [
            Key {
                column: "price_minor",
                descending: false,
            },
            Key {
                column: "product_id",
                descending: false,
            },
        ];
        let mut sql = Sql::default();
        assert_eq!(
            beyond(&mut sql, &price, vec![5i64.into(), "p".into()], true),
            "(r.price_minor, r.product_id) > ($1, $2)"
        );
        assert_eq!(
            beyond(&mut sql, &price, vec![5i64.into(), "p".into()], false),
            "(r.price_minor, r.product_id) < ($3, $4)"
        );
    }

    fn search(q: &str) -> ProductSearch {
        crate::domain::query::product_search(&format!("q={q}&in_stock=true")).unwrap()
    }

    #[test]
    fn every_distinct_word_scans_the_index_once_and_the_name_key_ranks_first() {
        let m = Matched::new(&search("red+mu+red"), true);
        let sql = m.ranked("p.product_id");
        assert_eq!(sql.matches("FROM product_search_terms").count(), 2);
        assert!(sql.contains("JOIN product_search_view p ON p.product_id = w0.product_id"));
        assert!(
            sql.contains(
                "CASE WHEN p.name_key = $5 THEN 0 WHEN w0.lvl <= 0 AND w1.lvl <= 0 THEN 1"
            )
        );
        // The key is every word in order, repeats included.
        assert!(matches!(&m.sql.params()[4], SqlValue::Text(k) if k == "red mu red"));
        assert!(sql.ends_with("WHERE p.in_stock = $6"));
        // Without filters: the words only.
        let words_only = Matched::new(&search("red"), false);
        assert_eq!(words_only.sql.where_clause(), "");
        // No words: every product, all one tier.
        let all = Matched::new(
            &ProductSearch {
                words: vec![],
                ..search("x")
            },
            false,
        );
        assert_eq!(
            all.ranked("p.product_id"),
            "SELECT p.product_id, 3 AS tier FROM product_search_view p"
        );
    }
}
