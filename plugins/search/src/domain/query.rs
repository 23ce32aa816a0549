//! What the three endpoints accept: their query parameters read and checked
//! before any SQL runs. A parameter an endpoint does not take, one given
//! twice, or a value that does not parse is a 400 naming it (the list
//! convention's rule for query strings), and nothing is read.
use super::text::words;
use mercato_sdk::http::HttpError;
use mercato_sdk::list::ListQuery;
use mercato_sdk::time::Instant;
use mercato_sdk::validate::{MAX_AMOUNT_MINOR, is_currency};

/// Longest `q`, in characters.
pub const MAX_Q_CHARS: usize = 200;
/// Most words in `q`: each is one indexed lookup.
pub const MAX_Q_WORDS: usize = 10;
/// Most `attr.<name>` filters in one search.
pub const MAX_ATTRIBUTE_FILTERS: usize = 10;

/// `a%20b+c` → `a b c`; an invalid escape is kept as it is.
pub fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bad(code: &str, message: String) -> HttpError {
    HttpError::bad_request(code, &message)
}

/// Seller ids as the catalog accepts them: 1-64 of `[a-z0-9_-]`.
pub fn is_seller_id(raw: &str) -> bool {
    (1..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn seller_id(raw: &str) -> Result<String, HttpError> {
    if is_seller_id(raw) {
        Ok(raw.to_owned())
    } else {
        Err(bad(
            "invalid_seller_id",
            format!("seller_id `{raw}` must be 1-64 lower-case letters, digits, '_' or '-'"),
        ))
    }
}

fn currency(raw: &str) -> Result<String, HttpError> {
    if is_currency(raw) {
        Ok(raw.to_owned())
    } else {
        Err(bad(
            "invalid_currency",
            format!("currency `{raw}` must be an ISO 4217 code such as EUR"),
        ))
    }
}

/// An amount in minor units, 0 to the shop's largest.
fn amount(name: &str, raw: &str, code: &str) -> Result<i64, HttpError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| (0..=MAX_AMOUNT_MINOR).contains(n))
        .ok_or_else(|| {
            bad(
                code,
                format!("{name} must be a whole number of minor units from 0 to {MAX_AMOUNT_MINOR}, got `{raw}`"),
            )
        })
}

/// How product results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Best match first (see `text::Tier`), then newest.
    Relevance,
    /// Cheapest first, then by id.
    PriceAsc,
    /// Dearest first, then by id, descending.
    PriceDesc,
    /// Newest first (creation time, then id, descending).
    Newest,
}

/// A product search, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductSearch {
    /// The words of `q` in order (empty: no text condition).
    pub words: Vec<String>,
    pub in_stock: Option<bool>,
    pub price_min_minor: Option<i64>,
    pub price_max_minor: Option<i64>,
    pub currency: Option<String>,
    pub seller_id: Option<String>,
    /// `attr.<name>=<value>` filters: (name, value), each must hold.
    pub attributes: Vec<(String, String)>,
    /// `Relevance` only with words; without, relevance is just newest first.
    pub sort: Sort,
    pub limit: i64,
    /// The list convention's reading: the cursors the page starts from.
    pub list: ListQuery,
}

impl ProductSearch {
    /// The distinct query words, each one condition of the match.
    pub fn distinct_words(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for w in &self.words {
            if !out.contains(w) {
                out.push(w.clone());
            }
        }
        out
    }
}

/// The plain filters of `GET /search/products`, besides `attr.<name>`.
pub const PRODUCT_FILTERS: &[&str] = &[
    "q",
    "in_stock",
    "price_min_minor",
    "price_max_minor",
    "currency",
    "seller_id",
    "sort",
];

/// Reads `GET /search/products`' query string.
pub fn product_search(query: &str) -> Result<ProductSearch, HttpError> {
    // The attr.<name> parameters a request names are filters of this request;
    // the list convention reads the rest (limit, cursors, unknown, twice).
    let mut attribute_keys: Vec<String> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = percent_decode(pair.split_once('=').map_or(pair, |(k, _)| k));
        if key.starts_with("attr.") && !attribute_keys.contains(&key) {
            attribute_keys.push(key);
        }
    }
    let mut filters: Vec<&str> = PRODUCT_FILTERS.to_vec();
    filters.push("attr.<name>");
    filters.extend(attribute_keys.iter().map(String::as_str));
    let list = ListQuery::parse_query(query, &filters)?;

    let mut search = ProductSearch {
        words: Vec::new(),
        in_stock: None,
        price_min_minor: None,
        price_max_minor: None,
        currency: None,
        seller_id: None,
        attributes: Vec::new(),
        sort: Sort::Relevance,
        limit: list.limit,
        list: list.clone(),
    };
    if let Some(q) = list.filter("q") {
        if q.chars().count() > MAX_Q_CHARS {
            return Err(bad(
                "invalid_q",
                format!("q must be at most {MAX_Q_CHARS} characters"),
            ));
        }
        // Words past the tenth are left out, as web search engines do: each
        // word is a join, and the schema cannot count words to refuse them.
        search.words = words(q);
        search.words.truncate(MAX_Q_WORDS);
    }
    if let Some(raw) = list.filter("in_stock") {
        search.in_stock = Some(match raw {
            "true" => true,
            "false" => false,
            other => {
                return Err(bad(
                    "invalid_in_stock",
                    format!("in_stock must be true or false, got `{other}`"),
                ));
            }
        });
    }
    if let Some(raw) = list.filter("price_min_minor") {
        search.price_min_minor = Some(amount("price_min_minor", raw, "invalid_price")?);
    }
    if let Some(raw) = list.filter("price_max_minor") {
        search.price_max_minor = Some(amount("price_max_minor", raw, "invalid_price")?);
    }
    // An inverted range (min above max) is well formed and matches nothing,
    // as SQL's and Stripe's range filters do; it is not refused.
    if let Some(raw) = list.filter("currency") {
        search.currency = Some(currency(raw)?);
    }
    if let Some(raw) = list.filter("seller_id") {
        search.seller_id = Some(seller_id(raw)?);
    }
    if let Some(raw) = list.filter("sort") {
        search.sort = match raw {
            "relevance" => Sort::Relevance,
            "price_asc" => Sort::PriceAsc,
            "price_desc" => Sort::PriceDesc,
            "newest" => Sort::Newest,
            other => {
                return Err(bad(
                    "invalid_sort",
                    format!(
                        "sort must be relevance, price_asc, price_desc or newest, got `{other}`"
                    ),
                ));
            }
        };
    }
    if search.sort == Sort::Relevance && search.words.is_empty() {
        search.sort = Sort::Newest;
    }
    if attribute_keys.len() > MAX_ATTRIBUTE_FILTERS {
        return Err(bad(
            "invalid_attribute_filter",
            format!("at most {MAX_ATTRIBUTE_FILTERS} attr.<name> filters"),
        ));
    }
    for key in &attribute_keys {
        let name = &key["attr.".len()..];
        let value = list.filter(key).unwrap_or_default();
        if !(1..=100).contains(&name.chars().count()) || !(1..=200).contains(&value.chars().count())
        {
            return Err(bad(
                "invalid_attribute_filter",
                format!("`{key}` needs a name of 1-100 and a value of 1-200 characters"),
            ));
        }
        search.attributes.push((name.to_owned(), value.to_owned()));
    }
    Ok(search)
}

/// The statuses an order in the view can have: those orders' events tell.
pub const ORDER_STATUSES: &[&str] = &[
    "PENDING",
    "AWAITING_PAYMENT",
    "PAID",
    "PARTIALLY_REFUNDED",
    "REFUNDED",
    "REJECTED",
    "CANCELLED",
];

/// The filters of `GET /search/orders`.
pub const ORDER_FILTERS: &[&str] = &[
    "status",
    "buyer_id",
    "created_gte",
    "created_lt",
    "total_gte_minor",
    "total_lte_minor",
];

/// The filters of an order list, checked; times in the host clock's format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilters {
    pub status: Option<String>,
    pub buyer_id: Option<String>,
    pub created_gte: Option<String>,
    pub created_lt: Option<String>,
    pub total_gte_minor: Option<i64>,
    pub total_lte_minor: Option<i64>,
}

fn time(name: &str, raw: &str) -> Result<String, HttpError> {
    Instant::parse(raw).map(|t| t.to_string()).ok_or_else(|| {
        bad(
            "invalid_time",
            format!("{name} must be an RFC 3339 time such as 2026-01-31T00:00:00Z, got `{raw}`"),
        )
    })
}

/// Checks the filters [`ListQuery`] read for `GET /search/orders`.
pub fn order_filters(list: &ListQuery) -> Result<OrderFilters, HttpError> {
    let mut f = OrderFilters::default();
    if let Some(raw) = list.filter("status") {
        if !ORDER_STATUSES.contains(&raw) {
            return Err(bad(
                "invalid_status",
                format!(
                    "status must be one of {}, got `{raw}`",
                    ORDER_STATUSES.join(", ")
                ),
            ));
        }
        f.status = Some(raw.to_owned());
    }
    if let Some(raw) = list.filter("buyer_id") {
        if raw.is_empty() || raw.len() > 200 {
            return Err(bad(
                "invalid_buyer_id",
                "buyer_id must be 1-200 bytes".into(),
            ));
        }
        f.buyer_id = Some(raw.to_owned());
    }
    if let Some(raw) = list.filter("created_gte") {
        f.created_gte = Some(time("created_gte", raw)?);
    }
    if let Some(raw) = list.filter("created_lt") {
        f.created_lt = Some(time("created_lt", raw)?);
    }
    if let Some(raw) = list.filter("total_gte_minor") {
        f.total_gte_minor = Some(amount("total_gte_minor", raw, "invalid_amount")?);
    }
    if let Some(raw) = list.filter("total_lte_minor") {
        f.total_lte_minor = Some(amount("total_lte_minor", raw, "invalid_amount")?);
    }
    // An empty time or total range matches no order (not a 400).
    Ok(f)
}

/// A dashboard request: an inclusive range of UTC days, and the currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DashboardQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub currency: Option<String>,
}

/// A day as `YYYY-MM-DD`, a real date of the calendar.
pub fn is_day(raw: &str) -> bool {
    raw.len() == 10 && Instant::parse(&format!("{raw}T00:00:00Z")).is_some()
}

/// Reads `GET /search/sellers/{id}/dashboard`'s query string: `from`, `to`
/// (inclusive `YYYY-MM-DD` UTC days) and `currency`; nothing else.
pub fn dashboard_query(query: &str) -> Result<DashboardQuery, HttpError> {
    let allowed = ["from", "to", "currency"];
    let mut q = DashboardQuery::default();
    let mut seen: Vec<String> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (percent_decode(raw_key), percent_decode(raw_value));
        if seen.contains(&key) {
            return Err(bad(
                "duplicate_parameter",
                format!("query parameter `{key}` is given more than once"),
            ));
        }
        seen.push(key.clone());
        match key.as_str() {
            "from" | "to" if !is_day(&value) => {
                return Err(bad(
                    "invalid_date",
                    format!("{key} must be a day as YYYY-MM-DD, got `{value}`"),
                ));
            }
            "from" => q.from = Some(value),
            "to" => q.to = Some(value),
            "currency" => q.currency = Some(currency(&value)?),
            other => {
                return Err(bad(
                    "unknown_parameter",
                    format!(
                        "unknown query parameter `{other}`; this endpoint takes {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
    }
    // `from` after `to` is an empty window: zero sales, not a 400.
    Ok(q)
}

#[cfg(test)]
mod tests;
