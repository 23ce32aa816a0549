//! Parsing, defaults, overrides and validation of the configuration.
use super::*;

#[test]
fn plugin_overrides_merge_over_defaults() {
    let config: Config = toml::from_str(
        r#"
        [limits]
        memory_mib = 32
        deadline_ms = 500
        [plugins.orders]
        limits = { memory_mib = 128 }
        "#,
    )
    .unwrap();
    let orders = config.limits_for("orders");
    assert_eq!((orders.memory_mib, orders.deadline_ms), (128, 500));
    assert_eq!(config.limits_for("other").memory_mib, 32);
    assert_eq!(config.max_memory_bytes(), 128 << 20);
}

#[test]
fn unknown_keys_and_backends_are_refused() {
    assert!(toml::from_str::<Config>("listn = \"x\"").is_err());
    let refused = toml::from_str::<Config>("[storage]\nbackend = \"mysql\"").unwrap_err();
    assert!(
        refused.to_string().contains("unknown variant `mysql`"),
        "{refused}"
    );
    let config: Config = toml::from_str("[storage]\nbackend = \"postgres\"").unwrap();
    assert!(config.validate().is_err());
}

#[test]
fn http_limits_default_and_must_be_positive() {
    let config: Config = toml::from_str("[http]\nmax_connections = 2").unwrap();
    assert_eq!(
        config.http,
        HttpConfig {
            max_connections: 2,
            ..HttpConfig::default()
        }
    );
    let defaults = HttpConfig::default();
    assert_eq!(
        (
            defaults.header_read_timeout_ms,
            defaults.body_read_timeout_ms,
            defaults.keep_alive_timeout_ms,
            defaults.max_connections
        ),
        (10_000, 30_000, 60_000, 1_024)
    );
    assert!(config.validate().is_ok());
    for field in [
        "header_read_timeout_ms",
        "body_read_timeout_ms",
        "keep_alive_timeout_ms",
        "max_connections",
    ] {
        let config: Config = toml::from_str(&format!("[http]\n{field} = 0")).unwrap();
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            format!("invalid configuration: http.{field} must be positive")
        );
    }
    assert!(toml::from_str::<Config>("[http]\nidle_ms = 5").is_err());
}

#[test]
fn idempotency_retention_defaults_to_a_day_and_must_be_positive() {
    let config: Config = toml::from_str("").unwrap();
    assert_eq!(config.idempotency.retention_ms, 86_400_000);
    assert_eq!(config.idempotency.prune_interval(), Duration::from_secs(60));
    let config: Config = toml::from_str("[idempotency]\nretention_ms = 0").unwrap();
    assert!(
        config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("idempotency.retention_ms")
    );
    let config: Config = toml::from_str("[idempotency]\nprune_batch = 0").unwrap();
    assert!(config.validate().is_err());
    assert!(toml::from_str::<Config>("[idempotency]\nretention = 1").is_err());
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let events = EventsConfig {
        backoff_base_ms: 100,
        backoff_max_ms: 1_000,
        ..EventsConfig::default()
    };
    assert_eq!(events.backoff(1), Duration::from_millis(100));
    assert_eq!(events.backoff(3), Duration::from_millis(400));
    assert_eq!(events.backoff(10), Duration::from_millis(1_000));
}

#[test]
fn the_documented_configuration_reference_is_a_valid_file() {
    // docs/operations.md shows every key; unknown keys are errors, so the
    // reference cannot name a key the host does not take.
    let doc = include_str!("../../../docs/operations.md");
    let start = doc
        .find("## Configuration reference")
        .expect("the reference section");
    let block = doc[start..]
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the reference's TOML block");
    let config: Config = toml::from_str(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
    assert_eq!(config.max_component_bytes, 64 << 20);
    assert!(config.trusted_keys.is_empty());
    assert_eq!(
        config.plugins["orders"].limits.unwrap().memory_mib,
        Some(128)
    );
}
