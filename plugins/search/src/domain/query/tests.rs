use super::*;
use mercato_sdk::list::Cursor;

fn search(query: &str) -> ProductSearch {
    product_search(query).unwrap_or_else(|e| panic!("{query}: {e:?}"))
}

fn refused(result: Result<impl std::fmt::Debug, HttpError>) -> (u16, String) {
    let e = result.unwrap_err();
    (e.status, e.code)
}

#[test]
fn percent_decoding_reads_forms_and_keeps_invalid_escapes() {
    assert_eq!(percent_decode("red+mug%21"), "red mug!");
    assert_eq!(percent_decode("caf%C3%A9"), "café");
    assert_eq!(percent_decode("100%"), "100%");
    assert_eq!(percent_decode("%4"), "%4");
    assert_eq!(percent_decode("%zz"), "%zz");
    assert_eq!(percent_decode("attr%2Ecolor"), "attr.color");
}

#[test]
fn an_empty_search_lists_everything_newest_first() {
    let s = search("");
    assert_eq!(s.words, Vec::<String>::new());
    assert_eq!(s.sort, Sort::Newest);
    assert_eq!((s.limit, &s.list.cursor), (20, &None));
    assert!(s.attributes.is_empty());
}

#[test]
fn every_filter_is_read() {
    let s = search(
        "q=Red+Mug&in_stock=true&price_min_minor=100&price_max_minor=5000&currency=EUR\
         &seller_id=acme&attr.color=red&attr.size%20label=X+L&sort=price_desc&limit=5&starting_after=p1",
    );
    assert_eq!(s.words, ["red", "mug"]);
    assert_eq!(s.in_stock, Some(true));
    assert_eq!(
        (s.price_min_minor, s.price_max_minor),
        (Some(100), Some(5000))
    );
    assert_eq!(s.currency.as_deref(), Some("EUR"));
    assert_eq!(s.seller_id.as_deref(), Some("acme"));
    assert_eq!(
        s.attributes,
        [
            ("color".to_owned(), "red".to_owned()),
            ("size label".to_owned(), "X L".to_owned())
        ]
    );
    assert_eq!(s.sort, Sort::PriceDesc);
    assert_eq!(s.limit, 5);
    assert_eq!(s.list.cursor, Some(Cursor::StartingAfter("p1".into())));
    assert_eq!(search("in_stock=false").in_stock, Some(false));
}

#[test]
fn relevance_is_the_default_with_words_and_newest_without() {
    assert_eq!(search("q=mug").sort, Sort::Relevance);
    assert_eq!(search("q=mug&sort=newest").sort, Sort::Newest);
    assert_eq!(search("sort=relevance").sort, Sort::Newest);
    assert_eq!(search("q=%20-%20").sort, Sort::Newest);
    assert_eq!(search("sort=price_asc").sort, Sort::PriceAsc);
}

#[test]
fn query_words_are_kept_in_order_and_deduplicated_for_matching() {
    let s = search("q=mug+red+mug");
    assert_eq!(s.words, ["mug", "red", "mug"]);
    assert_eq!(s.distinct_words(), ["mug", "red"]);
    // Past the tenth, words are left out.
    let words: Vec<String> = (0..MAX_Q_WORDS + 2).map(|i| format!("w{i}")).collect();
    let s = search(&format!("q={}", words.join("+")));
    assert_eq!(s.words, words[..MAX_Q_WORDS]);
}

#[test]
fn bad_product_searches_are_400s_naming_the_problem() {
    let long_q = format!("q={}", "a".repeat(MAX_Q_CHARS + 1));
    let many_attributes: String = (0..=MAX_ATTRIBUTE_FILTERS)
        .map(|i| format!("attr.a{i}=v&"))
        .collect();
    let long_value = format!("attr.color={}", "v".repeat(201));
    for (query, code) in [
        ("qq=mug", "unknown_parameter"),
        ("q=a&q=b", "duplicate_parameter"),
        ("attr.color=red&attr.color=blue", "duplicate_parameter"),
        (long_q.as_str(), "invalid_q"),
        ("in_stock=yes", "invalid_in_stock"),
        ("price_min_minor=-1", "invalid_price"),
        ("price_max_minor=1.5", "invalid_price"),
        ("price_max_minor=1000000000001", "invalid_price"),
        ("currency=eur", "invalid_currency"),
        ("seller_id=Acme", "invalid_seller_id"),
        ("sort=cheapest", "invalid_sort"),
        ("attr.=red", "invalid_attribute_filter"),
        ("attr.color=", "invalid_attribute_filter"),
        (long_value.as_str(), "invalid_attribute_filter"),
        (many_attributes.as_str(), "invalid_attribute_filter"),
        ("limit=0", "invalid_limit"),
        ("starting_after=", "invalid_cursor"),
    ] {
        assert_eq!(
            refused(product_search(query)),
            (400, code.to_owned()),
            "{query}"
        );
    }
    // A price range with min above max is well formed; it matches nothing.
    let s = search("price_min_minor=10&price_max_minor=9");
    assert_eq!((s.price_min_minor, s.price_max_minor), (Some(10), Some(9)));
    let e = product_search("colour=red").unwrap_err();
    assert!(e.message.contains("`colour`"), "{}", e.message);
    assert!(e.message.contains("attr.<name>"), "{}", e.message);
}

fn orders(query: &str) -> Result<OrderFilters, HttpError> {
    order_filters(&ListQuery::parse_query(query, ORDER_FILTERS)?)
}

#[test]
fn order_filters_are_read_and_times_normalised() {
    let f = orders(
        "status=PAID&buyer_id=b1&created_gte=2026-01-01T00:00:00Z&created_lt=2026-02-01T01:00:00%2B01:00\
         &total_gte_minor=100&total_lte_minor=100",
    )
    .unwrap();
    assert_eq!(
        f,
        OrderFilters {
            status: Some("PAID".into()),
            buyer_id: Some("b1".into()),
            created_gte: Some("2026-01-01T00:00:00.000Z".into()),
            created_lt: Some("2026-02-01T00:00:00.000Z".into()),
            total_gte_minor: Some(100),
            total_lte_minor: Some(100),
        }
    );
    assert_eq!(orders("").unwrap(), OrderFilters::default());
}

#[test]
fn bad_order_filters_are_400s() {
    // Empty ranges are well formed: they match no order.
    for query in [
        "total_gte_minor=5&total_lte_minor=4",
        "created_gte=2026-01-02T00:00:00Z&created_lt=2026-01-02T00:00:00Z",
    ] {
        assert!(orders(query).is_ok(), "{query}");
    }
    for (query, code) in [
        ("status=paid", "invalid_status"),
        ("status=SHIPPED", "invalid_status"),
        ("buyer_id=", "invalid_buyer_id"),
        ("created_gte=yesterday", "invalid_time"),
        ("created_lt=2026-01-01", "invalid_time"),
        ("total_gte_minor=-5", "invalid_amount"),
        ("sort=newest", "unknown_parameter"),
    ] {
        assert_eq!(refused(orders(query)), (400, code.to_owned()), "{query}");
    }
}

#[test]
fn days_are_real_calendar_dates() {
    for ok in ["2026-01-31", "2024-02-29", "0001-01-01"] {
        assert!(is_day(ok), "{ok}");
    }
    for bad in [
        "2026-02-29",
        "2026-1-31",
        "2026-13-01",
        "20260131",
        "2026-01-31T00:00:00Z",
        "",
    ] {
        assert!(!is_day(bad), "{bad}");
    }
}

#[test]
fn a_dashboard_takes_an_inclusive_day_range_and_a_currency() {
    let q = dashboard_query("from=2026-01-01&to=2026-01-31&currency=EUR").unwrap();
    assert_eq!(
        q,
        DashboardQuery {
            from: Some("2026-01-01".into()),
            to: Some("2026-01-31".into()),
            currency: Some("EUR".into()),
        }
    );
    assert_eq!(dashboard_query("").unwrap(), DashboardQuery::default());
    assert!(dashboard_query("from=2026-01-01&to=2026-01-01").is_ok());
    // An inverted window is well formed; it covers no day.
    assert!(dashboard_query("from=2026-02-01&to=2026-01-31").is_ok());
    for (query, code) in [
        ("from=2026-01-32", "invalid_date"),
        ("to=yesterday", "invalid_date"),
        ("currency=euro", "invalid_currency"),
        ("from=2026-01-01&from=2026-01-02", "duplicate_parameter"),
        ("limit=5", "unknown_parameter"),
    ] {
        assert_eq!(
            refused(dashboard_query(query)),
            (400, code.to_owned()),
            "{query}"
        );
    }
}

#[test]
fn seller_ids_follow_the_catalog_rule() {
    assert!(is_seller_id("acme-1_x"));
    assert!(is_seller_id(&"s".repeat(64)));
    for bad in ["", "Acme", "a b", "a.b", &"s".repeat(65)] {
        assert!(!is_seller_id(bad), "{bad:?}");
    }
}
