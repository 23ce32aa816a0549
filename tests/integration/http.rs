//! The HTTP gateway and the `mercato` binary: host routes, admin auth, limits,
//! JSON errors, request ids, graceful shutdown, slow clients, secret files, and
//! zero-config `mercato serve`.
use crate::common::{JsonLogged, TestApp, config, serve_json_logged, within};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_routes_report_health_plugins_events_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["notes", "audit"]).await;
    assert_eq!(
        app.get("/healthz").await,
        (StatusCode::OK, json!({ "status": "ok" }))
    );
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(
        (status, &ready["plugins"]),
        (StatusCode::OK, &json!(["audit", "notes"]))
    );

    let (status, plugins) = app.get("/admin/plugins").await;
    assert_eq!(status, StatusCode::OK);
    let audit = &plugins["plugins"][0];
    assert_eq!(audit["name"], "audit");
    assert_eq!(audit["subscriptions"], json!(["notes.*", "hostile.Ping"]));
    assert_eq!(audit["limits"]["memory_mib"], 64);
    assert_eq!(audit["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(audit["storage"], "sqlite");

    app.post("/notes/notes", &json!({ "id": "m1", "body": "x" }))
        .await;
    app.drain().await;
    let (_, events) = app.get("/admin/events").await;
    assert_eq!(
        events["subscribers"],
        json!([{ "subscriber": "audit", "source": "notes", "position": 1, "lag": 0,
            "oldest_unconsumed_age_seconds": 0.0 }])
    );
    // A client's mistake is counted apart from the plugin's failures.
    let (status, _) = app.post("/notes/notes", &json!({ "id": 7 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The marker keeps the stream's gauges current: caught up, nothing waits.
    let caught_up =
        r#"mercato_stream_oldest_unconsumed_age_seconds{source="notes",subscriber="audit"} 0"#;
    within(Duration::from_secs(10), async || {
        app.metrics().await.contains(caught_up)
    })
    .await;
    let metrics = app.metrics().await;
    for expected in [
        r#"mercato_plugin_calls_total{kind="request",outcome="ok",plugin="notes",version="0.1.0"} 1"#,
        r#"mercato_plugin_calls_total{kind="request",outcome="client_error",plugin="notes",version="0.1.0"} 1"#,
        r#"mercato_plugin_calls_total{kind="event",outcome="ok",plugin="audit",version="0.1.0"} 1"#,
        "mercato_plugin_call_duration_seconds_bucket",
        r#"mercato_event_deliveries_total{outcome="ok",source="notes",subscriber="audit"} 1"#,
        // Every plugin has a depth, audit too, though it never emits.
        r#"mercato_outbox_depth{plugin="audit"} 0"#,
        // By route and status class (notes documents no routes: `other`).
        r#"mercato_http_requests_total{method="POST",plugin="notes",route="other",status_class="2xx"} 1"#,
        r#"mercato_http_requests_total{method="POST",plugin="notes",route="other",status_class="4xx"} 1"#,
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in\n{metrics}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_require_the_token_when_one_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.admin_token = Some("a-long-enough-admin-token".into());
    let app = TestApp::start(config, &["notes"]).await;
    assert_eq!(app.host.admin_token(), "a-long-enough-admin-token");
    let (status, body) = app
        .request_anonymous("GET", "/admin/plugins", None, &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let wrong = [("authorization", "Bearer a-long-enough-admin-tokeX")];
    assert_eq!(
        app.request("GET", "/admin/events", None, &wrong).await.0,
        StatusCode::UNAUTHORIZED
    );
    let right = [("authorization", "Bearer a-long-enough-admin-token")];
    assert_eq!(
        app.request("GET", "/admin/plugins", None, &right).await.0,
        StatusCode::OK
    );
    // Health stays public; a plugin route the plugin does not declare
    // public needs a key (tests/integration/keys.rs has the roles).
    let public = |path| app.request_anonymous("GET", path, None, &[]);
    assert_eq!(public("/healthz").await.0, StatusCode::OK);
    assert_eq!(public("/notes/notes").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.request("GET", "/notes/notes", None, &right).await.0,
        StatusCode::OK,
        "the admin token acts as a secret key"
    );
    assert!(
        !dir.path().join("admin-token").exists(),
        "a configured token needs no token file"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.max_body_bytes = 1024;
    let app = TestApp::start(config, &["notes"]).await;
    let big = json!({ "id": "big", "body": "x".repeat(4096) });
    let (status, body) = app.post("/notes/notes", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "body_too_large");

    let resp = app
        .client
        .post(format!("{}/notes/notes", app.url))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");

    let (status, body) = app.get("/nowhere/at/all").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_plugin"))
    );
    let (status, body) = app.request("DELETE", "/notes/notes", None, &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
    // Empty, too long, or with a tab (HTTP carries it; the key's rule
    // does not allow it): refused before the plugin runs.
    let long = "k".repeat(256);
    for bad in ["", "a\tb", long.as_str()] {
        let (status, body) = app
            .request(
                "POST",
                "/notes/notes",
                Some(&json!({ "id": "k", "body": "x" })),
                &[("idempotency-key", bad)],
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_idempotency_key")),
            "{bad:?}"
        );
    }

    let (_, count) = app.get("/notes/notes").await;
    assert_eq!(count["count"], 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["notes"]).await;
    let resp = app
        .client
        .get(format!("{}/notes/notes", app.url))
        .send()
        .await
        .unwrap();
    assert!(!resp.headers()["x-request-id"].is_empty());
    let resp = app
        .client
        .get(format!("{}/notes/notes", app.url))
        .header("x-request-id", "caller-chosen")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "caller-chosen");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_in_flight_call_finish_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["notes"]).await;
    let in_flight = {
        let (client, url) = (app.client.clone(), app.url.clone());
        tokio::spawn(async move {
            client
                .post(format!("{url}/notes/notes"))
                .json(&json!({ "id": "slow", "body": "x", "busy_ms": 500 }))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // Shut down once the call is running inside the plugin.
    let running = app.host.metrics().in_flight.with_label_values(&["notes"]);
    while running.get() == 0 {
        assert!(
            !in_flight.is_finished(),
            "the request ended before it was seen running"
        );
        tokio::task::yield_now().await;
    }
    app.stop().await;
    assert_eq!(in_flight.await.unwrap(), StatusCode::CREATED);
    assert_eq!(
        crate::common::sqlite_count(dir.path(), "notes", "SELECT COUNT(*) FROM notes"),
        1
    );
}

#[test]
fn help_explains_every_serve_option() {
    let out = Command::new(env!("CARGO_BIN_EXE_mercato"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for option in [
        "--config",
        "--listen",
        "--data-dir",
        "--admin-token",
        "--database-url",
        "--plugin",
        "--no-embedded",
    ] {
        assert!(help.contains(option), "{option} missing from:\n{help}");
    }
}

#[test]
fn mercato_serve_runs_with_zero_config_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mercato"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("MERCATO_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut address = None;
    let mut log = String::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        log += &line;
        if let Some(rest) = line.split("address=").nth(1) {
            address = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    let address = address.expect("the server logs its address");
    let health = std::net::TcpStream::connect(&address).map(|mut s| {
        use std::io::{Read, Write};
        s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    });
    let health = health.unwrap();
    assert!(health.starts_with("HTTP/1.0 200"), "{health}");
    assert!(
        health.contains("\"orders\""),
        "embedded plugins are loaded: {health}"
    );
    assert!(
        dir.path().join("data/orders.db").exists(),
        "zero config uses ./data"
    );
    let token_file = dir.path().join("data/admin-token");
    assert_eq!(mode(&token_file), 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(
        log.contains("admin-token") && !log.contains(&token),
        "the log names the token file, never the token: {log}"
    );
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success(), "graceful exit on SIGTERM");
}

#[test]
fn mercato_demo_walks_one_order_from_checkout_to_delivery_and_refund() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mercato"))
        .args(["demo", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "AWAITING_PAYMENT",
        "\"status\":\"COMPLETED\"",
        "\"fulfillment_status\":\"DELIVERED\"",
        "\"applied\":false",
        "\"PAID\"",
        "PARTIALLY_REFUNDED",
        "\"REFUNDED\"",
        "\"balanced\":true",
    ] {
        assert!(
            stdout.contains(step),
            "{step} missing from the walkthrough:\n{stdout}"
        );
    }
}

const GET_HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

/// Reads until the server closes the connection (end of stream or reset);
/// returns what arrived. Fails if it is still open at `deadline`.
async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin), deadline: Instant) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return String::from_utf8_lossy(&received).into_owned(),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the connection is still open; received: {}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
}

/// Reads one response (its body sized by Content-Length) from a keep-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return text;
            }
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed in the middle of a response: {text}");
        received.extend_from_slice(&buf[..n]);
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.http.header_read_timeout_ms = 1_000;
    let app = TestApp::start(config, &[]).await;
    let started = Instant::now();
    let (mut reader, mut writer) = TcpStream::connect(app.addr).await.unwrap().into_split();
    writer
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One more header byte every 200 ms, for as long as the server listens.
    let trickle = tokio::spawn(async move {
        for byte in b"x-slow: ".iter().chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let received = read_until_closed(&mut reader, started + Duration::from_secs(2)).await;
    let elapsed = started.elapsed();
    trickle.abort();
    assert_eq!(received, "", "an unfinished request gets no answer");
    assert!(
        elapsed >= Duration::from_secs(1),
        "closed before the timeout: {elapsed:?}"
    );
    assert_eq!(app.get("/healthz").await.0, StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut_off_with_408() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.http.body_read_timeout_ms = 1_000;
    let app = TestApp::start(config, &["notes"]).await;
    let started = Instant::now();
    let (mut reader, mut writer) = TcpStream::connect(app.addr).await.unwrap().into_split();
    // With a credential: a route needing one refuses before reading a body.
    let head = format!(
        "POST /notes/notes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {}\r\nContent-Length: 1000\r\n\r\n",
        app.host.admin_token()
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        while writer.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let received = read_until_closed(&mut reader, started + Duration::from_secs(2)).await;
    let elapsed = started.elapsed();
    trickle.abort();
    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    assert!(
        received.to_ascii_lowercase().contains("connection: close"),
        "{received}"
    );
    let body: Value = serde_json::from_str(received.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    assert!(
        elapsed >= Duration::from_secs(1),
        "cut off before the timeout: {elapsed:?}"
    );
    let (_, count) = app.get("/notes/notes").await;
    assert_eq!(count["count"], 0, "nothing was written");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // Shorter than the idle timeout: it must not be what closes an idle connection.
    config.http.header_read_timeout_ms = 300;
    config.http.keep_alive_timeout_ms = 1_000;
    let app = TestApp::start(config, &[]).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(GET_HEALTHZ).await.unwrap();
    let response = read_response(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let idle = Instant::now();
    let received = read_until_closed(&mut stream, idle + Duration::from_secs(2)).await;
    assert_eq!(received, "");
    let elapsed = idle.elapsed();
    assert!(
        elapsed >= Duration::from_millis(800),
        "closed long before the idle timeout: {elapsed:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.http.max_connections = 2;
    let app = TestApp::start(config, &[]).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(GET_HEALTHZ).await.unwrap();
        assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    // The kernel completes the handshake; the host does not accept it yet.
    let mut third = TcpStream::connect(app.addr).await.unwrap();
    third.write_all(GET_HEALTHZ).await.unwrap();
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.peek(&mut byte))
            .await
            .is_err(),
        "a connection beyond the limit was answered"
    );
    drop(held.remove(0));
    let response = tokio::time::timeout(Duration::from_secs(10), read_response(&mut third))
        .await
        .expect("answered once a connection closed");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    drop((held, third));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_the_admin_api_refuses_a_proxied_request() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    assert_eq!(config.admin_token, None);
    let app = TestApp::start(config.clone(), &["notes"]).await;
    // A reverse proxy on the same machine: the peer is 127.0.0.1.
    let proxied = ("x-forwarded-for", "203.0.113.9");
    let (status, body) = app
        .request_anonymous("GET", "/admin/plugins", None, &[proxied])
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized")),
        "{body}"
    );
    let path = dir.path().join("admin-token");
    let token = std::fs::read_to_string(&path).unwrap();
    assert!(
        token.len() >= 64 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "32+ random bytes, hex: {token}"
    );
    assert_eq!(mode(&path), 0o600);
    let bearer = format!("Bearer {token}");
    let (status, body) = app
        .request_anonymous(
            "GET",
            "/admin/plugins",
            None,
            &[proxied, ("authorization", &bearer)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;

    // A later start reuses the token, and takes the file back from other readers.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let app = TestApp::start(config, &["notes"]).await;
    assert_eq!(app.host.admin_token(), token);
    assert_eq!(mode(&path), 0o600);
    app.stop().await;
}

#[test]
fn keygen_writes_the_secret_key_0600() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.key");
    let keygen = || {
        Command::new(env!("CARGO_BIN_EXE_mercato"))
            .arg("keygen")
            .arg(&key)
            .output()
            .unwrap()
    };
    let out = keygen();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&key), 0o600);
    let secret = std::fs::read_to_string(&key).unwrap();
    assert_eq!(secret.len(), 64, "{secret}");
    let again = keygen();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && stderr.contains("already exists"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&key).unwrap(), secret, "unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_path_with_another_method_is_a_json_405_with_allow() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["notes"]).await;
    // With the admin token, which every route here admits.
    let client = &app.client;
    // A host route and a plugin route, each asked with a method it lacks.
    for (path, allowed) in [
        ("/admin/events", vec!["GET", "HEAD"]),
        ("/notes/notes", vec!["GET", "POST"]),
    ] {
        let response = client
            .delete(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        let allow = response
            .headers()
            .get("allow")
            .unwrap_or_else(|| panic!("no Allow header on {path}"))
            .to_str()
            .unwrap()
            .to_owned();
        let mut methods: Vec<&str> = allow.split(',').map(str::trim).collect();
        methods.sort();
        assert_eq!(methods, allowed, "{path}: Allow {allow}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "method_not_allowed",
            "{path}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("DELETE"),
            "{body}"
        );
    }
    app.stop().await;
}

/// `--log-format json`: every line `mercato serve` writes is one JSON object,
/// and each line logged while serving a request carries that request's id
/// (the `request` span), whether the client sent the id or the host made it.
#[test]
fn json_logs_are_one_object_per_line_and_name_the_request_they_serve() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_mercato"));
    command
        .args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path())
        // tower-http's own per-request lines, to have lines inside a request.
        .env("RUST_LOG", "info,tower_http=debug")
        .env_remove("MERCATO_DATABASE_URL")
        .env_remove("MERCATO_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let JsonLogged {
        mut child,
        mut log,
        lines,
        address,
    } = serve_json_logged(command);
    let parse = |line: String| -> Value {
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    let ask = |request: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&address).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    let sent = ask("GET /products/no-such-product HTTP/1.0\r\nx-request-id: rq-json-1\r\n\r\n");
    assert!(sent.starts_with("HTTP/1.0 404"), "{sent}");
    let answered_id = |answer: &str| {
        answer
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .expect("every answer names its request id")
            .to_owned()
    };
    let made_id = answered_id(&ask("GET /readyz HTTP/1.0\r\n\r\n"));
    // A hostile id, too long to name on every line: the host makes its own.
    let bloated = "x".repeat(4096);
    let replaced = answered_id(&ask(&format!(
        "GET /healthz HTTP/1.0\r\nx-request-id: {bloated}\r\n\r\n"
    )));
    assert!(replaced != bloated && replaced.len() <= 128, "{replaced}");
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    log.extend(lines.map(|l| parse(l.unwrap())));
    assert!(child.wait().unwrap().success());

    for line in &log {
        for field in ["timestamp", "level", "target"] {
            assert!(line[field].is_string(), "no {field}: {line}");
        }
        assert!(!line.to_string().contains(&bloated), "{line}");
    }
    for (id, path) in [
        ("rq-json-1", "/products/no-such-product"),
        (made_id.as_str(), "/readyz"),
        (replaced.as_str(), "/healthz"),
    ] {
        let of_request: Vec<&Value> = log
            .iter()
            .filter(|l| l["spans"][0]["request_id"] == id)
            .collect();
        assert!(
            of_request.len() >= 2,
            "the request's start and end lines name {id}: {log:?}"
        );
        for line in of_request {
            let span = &line["spans"][0];
            assert_eq!(
                (&span["name"], &span["method"], &span["path"]),
                (&json!("request"), &json!("GET"), &json!(path)),
                "{line}"
            );
        }
    }
}
