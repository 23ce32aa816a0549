//! Hot swap under traffic: deploy, migrate, switch, roll back — with nothing lost.
use crate::common::{
    Backend, SHOP, Teardown, TestApp, component, on_both_backends, place, plugin_version,
    put_component, seed, within,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

on_both_backends!(
    a_trapping_version_dead_letters_and_a_fix_plus_redrive_handles_each_once,
    a_trapping_version_dead_letters_and_a_fix_plus_redrive_handles_each_once_on_sqlite,
    a_trapping_version_dead_letters_and_a_fix_plus_redrive_handles_each_once_on_postgres,
);
async fn a_trapping_version_dead_letters_and_a_fix_plus_redrive_handles_each_once(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = backend.config(dir.path()).await;
    config.events.max_attempts = 2;
    let plugins = ["notes", "audit", "hostile"];
    let _teardown = Teardown::new(&config, &plugins);
    let app = TestApp::start(config, &plugins).await;
    let (status, body) = put_component(&app, "audit", component("audit-trap"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for _ in 0..3 {
        assert_eq!(
            app.post("/hostile/emit", &json!({})).await.0,
            StatusCode::ACCEPTED
        );
    }
    app.post("/notes/notes", &json!({ "id": "n1", "body": "x" }))
        .await;
    app.drain().await;
    let (_, events) = app.get("/admin/events").await;
    let letters = events["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 3, "{events}");
    assert!(letters.iter().all(|l| l["event_type"] == "Ping"));
    assert_eq!(
        app.seen().await.len(),
        1,
        "other events are handled by the trapping version"
    );

    // The fix is the original audit build.
    let (status, body) = put_component(&app, "audit", component("audit"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, report) = app
        .post(
            "/admin/events/dead-letters/redrive",
            &json!({ "plugin": "audit" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["redriven"].as_array().unwrap().len(), 3, "{report}");
    let (_, again) = app
        .post(
            "/admin/events/dead-letters/redrive",
            &json!({ "plugin": "audit" }),
        )
        .await;
    assert_eq!(again["redriven"], json!([]));
    let pings: Vec<Value> = app
        .seen()
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "Ping")
        .collect();
    assert_eq!(pings.len(), 3, "each redriven event handled exactly once");
    let (_, events) = app.get("/admin/events").await;
    assert_eq!(events["dead_letters"], json!([]));
    app.stop().await;
}

/// Plugin, upload, status, code, and what the message must mention.
type Refusal = (
    &'static str,
    Vec<u8>,
    StatusCode,
    &'static str,
    &'static [&'static str],
);

on_both_backends!(
    bad_uploads_are_refused_and_the_running_version_keeps_serving,
    bad_uploads_are_refused_and_the_running_version_keeps_serving_on_sqlite,
    bad_uploads_are_refused_and_the_running_version_keeps_serving_on_postgres,
);
async fn bad_uploads_are_refused_and_the_running_version_keeps_serving(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.config(dir.path()).await;
    let plugins = ["notes", "audit"];
    let _teardown = Teardown::new(&config, &plugins);
    let app = TestApp::start(config, &plugins).await;
    let before = plugin_version(&app, "notes").await;
    let cases: [Refusal; 6] = [
        (
            "notes",
            b"\0asm garbage".to_vec(),
            StatusCode::BAD_REQUEST,
            "not_a_component",
            &["component"],
        ),
        (
            "notes",
            b"<html>not a plugin</html>".to_vec(),
            StatusCode::BAD_REQUEST,
            "not_a_component",
            &["not WebAssembly", "`<html>no`", "wasm32-wasip2"],
        ),
        (
            "notes",
            component("wrong-world"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_world",
            &["mercato:plugin"],
        ),
        (
            "notes",
            component("forbidden-import"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "forbidden_import",
            &["test:evil/exfil"],
        ),
        (
            "notes",
            component("notes-destructive"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "destructive_migration",
            // The fixture hides the keyword gap in a comment: `DROP/**/body`.
            &["0002_drop_body.sql", "`ALTER TABLE notes DROP body`"],
        ),
        (
            "audit",
            component("notes"),
            StatusCode::BAD_REQUEST,
            "name_mismatch",
            &["`notes`"],
        ),
    ];
    for (n, (plugin, bytes, status, code, mentions)) in cases.into_iter().enumerate() {
        let (got, body) = put_component(&app, plugin, bytes, None).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        for mention in mentions {
            assert!(message.contains(mention), "{code}: {message}");
        }
        // The old version still serves, right after.
        let (status, _) = app
            .post(
                "/notes/notes",
                &json!({ "id": format!("after-{n}"), "body": "x" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(plugin_version(&app, "notes").await, before);
    }
    app.stop().await;
}

on_both_backends!(
    a_restart_serves_the_deployed_version_and_rollback_works_after_it,
    a_restart_serves_the_deployed_version_and_rollback_works_after_it_on_sqlite,
    a_restart_serves_the_deployed_version_and_rollback_works_after_it_on_postgres,
);
async fn a_restart_serves_the_deployed_version_and_rollback_works_after_it(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // Every start uses the same data dir (it keeps the deployed versions) and
    // the same storage (on PostgreSQL, the same namespace).
    let config = backend.shop_config(dir.path()).await;
    let _teardown = Teardown::new(&config, &SHOP);
    let app = TestApp::start(config.clone(), &SHOP).await;
    seed(&app, "KEEP", 100).await;
    let id = place(&app, "KEEP", "r").await;
    let (status, body) = put_component(&app, "orders", component("orders-v2"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["unchanged"], false, "{body}");
    // The same bytes again change nothing and add no version.
    let (status, again) = put_component(&app, "orders", component("orders-v2"), None).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        (&again["unchanged"], &again["current"]),
        (&json!(true), &body["current"]),
        "{again}"
    );
    app.stop().await;

    let app = TestApp::start(config.clone(), &SHOP).await;
    assert_eq!(plugin_version(&app, "orders").await.0, "2.0.0");
    assert_eq!(app.get(&format!("/orders/{id}")).await.1["channel"], "web");
    let (_, versions) = app.get("/admin/plugins/orders/versions").await;
    let versions: Vec<&str> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["2.0.0", "0.1.0"]);
    let (status, body) = app
        .request("POST", "/admin/plugins/orders/rollback", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        app.get(&format!("/orders/{id}"))
            .await
            .1
            .get("channel")
            .is_none()
    );
    let (status, body) = app
        .request("POST", "/admin/plugins/orders/rollback", None, &[])
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_previous_version"))
    );
    app.stop().await;

    let app = TestApp::start(config, &SHOP).await;
    assert_eq!(plugin_version(&app, "orders").await.0, "0.1.0");
    assert_eq!(app.get(&format!("/orders/{id}")).await.0, StatusCode::OK);
    app.stop().await;
}

on_both_backends!(
    signed_deploys_need_a_trusted_signature,
    signed_deploys_need_a_trusted_signature_on_sqlite,
    signed_deploys_need_a_trusted_signature_on_postgres,
);
async fn signed_deploys_need_a_trusted_signature(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = mercato::deploy::signing::generate().unwrap();
    let (other, _) = mercato::deploy::signing::generate().unwrap();
    let mut config = backend.config(dir.path()).await;
    config.trusted_keys = vec![public];
    let _teardown = Teardown::new(&config, &["notes"]);
    let app = TestApp::start(config, &["notes"]).await;
    let bytes = component("notes");
    let (status, body) = put_component(&app, "notes", bytes.clone(), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unsigned_component"))
    );
    let forged = mercato::deploy::signing::sign(&other, &bytes).unwrap();
    let (status, body) = put_component(&app, "notes", bytes.clone(), Some(&forged)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("bad_signature"))
    );
    let signature = mercato::deploy::signing::sign(&secret, &bytes).unwrap();
    let (status, body) = put_component(&app, "notes", bytes, Some(&signature)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}

on_both_backends!(
    the_cli_deploys_lists_and_rolls_back_a_running_host,
    the_cli_deploys_lists_and_rolls_back_a_running_host_on_sqlite,
    the_cli_deploys_lists_and_rolls_back_a_running_host_on_postgres,
);
async fn the_cli_deploys_lists_and_rolls_back_a_running_host(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let _teardown = Teardown::new(&config, &SHOP);
    let app = TestApp::start(config, &SHOP).await;
    let url = app.url.clone();
    // The host made its own admin token; the CLI finds it through --data-dir.
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let cli = move |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mercato"))
            .args(args)
            .args(["--url", &url, "--data-dir", &data_dir])
            .env_remove("MERCATO_ADMIN_TOKEN")
            .env_remove("MERCATO_DATA_DIR")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let v2 = mercato_test_artifacts::path("orders-v2");
    let (ok, out) = tokio::task::spawn_blocking({
        let cli = cli.clone();
        move || cli(&["deploy", v2, "--name", "orders"])
    })
    .await
    .unwrap();
    assert!(
        ok && out.contains("deployed orders 2.0.0") && out.contains("replacing 0.1.0"),
        "{out}"
    );
    let (ok, out) = tokio::task::spawn_blocking({
        let cli = cli.clone();
        move || cli(&["plugins", "orders"])
    })
    .await
    .unwrap();
    let serving = out.lines().find(|l| l.ends_with("serving"));
    assert!(
        ok && out.contains("0.1.0") && serving.is_some_and(|l| l.starts_with("2.0.0")),
        "{out}"
    );
    // A table for people, the admin API's JSON with --json.
    let (ok, out) = tokio::task::spawn_blocking({
        let cli = cli.clone();
        move || cli(&["plugins"])
    })
    .await
    .unwrap();
    assert!(
        ok && out.starts_with("NAME") && out.lines().count() > 1,
        "{out}"
    );
    let (ok, out) = tokio::task::spawn_blocking({
        let cli = cli.clone();
        move || cli(&["plugins", "--json"])
    })
    .await
    .unwrap();
    let listed: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(ok && listed["plugins"].is_array(), "{out}");
    let (ok, out) = tokio::task::spawn_blocking({
        let cli = cli.clone();
        move || cli(&["deploy", v2])
    })
    .await
    .unwrap();
    assert!(
        !ok && out.contains("name_mismatch"),
        "a file named orders_v2 is not plugin orders-v2: {out}"
    );
    let (ok, out) = tokio::task::spawn_blocking(move || cli(&["rollback", "orders"]))
        .await
        .unwrap();
    assert!(ok && out.contains("0.1.0"), "{out}");
    assert_eq!(plugin_version(&app, "orders").await.0, "0.1.0");

    // Without the token (no flag, no file in the data dir) the 401 says where to get it.
    let elsewhere = tempfile::tempdir().unwrap();
    let (url, empty) = (app.url.clone(), elsewhere.path().to_owned());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mercato"))
            .args(["plugins", "--url", &url, "--data-dir"])
            .arg(empty)
            .env_remove("MERCATO_ADMIN_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for hint in ["401", "--token", "MERCATO_ADMIN_TOKEN", "admin-token"] {
        assert!(stderr.contains(hint), "{hint} missing from: {stderr}");
    }
    // An explicit token works from anywhere.
    let (url, token) = (app.url.clone(), app.host.admin_token().to_owned());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mercato"))
            .args(["plugins", "--url", &url])
            .env("MERCATO_ADMIN_TOKEN", token)
            .env("MERCATO_DATA_DIR", "/nonexistent")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    app.stop().await;
}

on_both_backends!(
    watch_mode_redeploys_a_changed_component,
    watch_mode_redeploys_a_changed_component_on_sqlite,
    watch_mode_redeploys_a_changed_component_on_postgres,
);
async fn watch_mode_redeploys_a_changed_component(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let watched = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let _teardown = Teardown::new(&config, &SHOP);
    let app = TestApp::start(config, &SHOP).await;
    let watcher = mercato::deploy::Watcher::new(watched.path().to_owned());
    tokio::spawn(watcher.run(app.host.deployer().clone()));
    std::fs::copy(
        mercato_test_artifacts::path("orders-v2"),
        watched.path().join("orders.wasm"),
    )
    .unwrap();
    within(Duration::from_secs(20), async || {
        plugin_version(&app, "orders").await.0 == "2.0.0"
    })
    .await;
    app.stop().await;
}

/// The `source` events plugin `audit` has handled, as (source, sequence).
async fn audited(app: &TestApp) -> Vec<(String, i64)> {
    let (status, seen) = app.get("/audit/seen").await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    seen.as_array()
        .unwrap_or_else(|| seen["events"].as_array().expect("a list of events"))
        .iter()
        .map(|e| {
            (
                e["source"].as_str().unwrap().to_owned(),
                e["sequence"].as_i64().unwrap(),
            )
        })
        .collect()
}

on_both_backends!(
    a_removed_plugin_answers_404_keeps_its_data_and_comes_back_by_deploy,
    a_removed_plugin_answers_404_keeps_its_data_and_comes_back_by_deploy_on_sqlite,
    a_removed_plugin_answers_404_keeps_its_data_and_comes_back_by_deploy_on_postgres,
);
async fn a_removed_plugin_answers_404_keeps_its_data_and_comes_back_by_deploy(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = backend.shop_config(dir.path()).await;
    let plugins = ["notes", "audit"];
    let _teardown = Teardown::new(&config, &plugins);
    let app = TestApp::start(config.clone(), &plugins).await;
    let note = |id: &str| json!({ "id": id, "body": "kept" });
    assert_eq!(
        app.post("/notes/notes", &note("n1")).await.0,
        StatusCode::CREATED
    );
    app.drain().await;
    assert_eq!(audited(&app).await, [("notes".to_owned(), 1)]);

    // audit subscribes to notes: removing notes is refused, nothing changes.
    let (status, body) = app
        .request("DELETE", "/admin/plugins/notes", None, &[])
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::CONFLICT, &json!("has_subscribers")),
        "{body}"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("audit"));
    assert_eq!(app.get("/notes/notes").await.0, StatusCode::OK);
    for (path, code) in [
        ("/admin/plugins/nope", "unknown_plugin"),
        ("/admin/plugins/audit?force=yes", "invalid_parameter"),
    ] {
        let (status, body) = app.request("DELETE", path, None, &[]).await;
        assert_eq!(body["error"]["code"], code, "{path}: {status} {body}");
    }

    // audit itself has no subscribers: it goes, its routes 404, its streams
    // stop, and events it misses wait for it.
    let (status, removed) = app
        .request("DELETE", "/admin/plugins/audit", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(
        (&removed["kind"], &removed["unsubscribed"]),
        (&json!("plugin"), &json!([]))
    );
    assert_eq!(app.get("/audit/seen").await.0, StatusCode::NOT_FOUND);
    let (_, listed) = app.get("/admin/plugins").await;
    assert!(
        listed["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "audit"),
        "{listed}"
    );
    let (_, events) = app.get("/admin/events").await;
    assert_eq!(events["subscribers"], json!([]), "{events}");
    assert_eq!(
        app.post("/notes/notes", &note("n2")).await.0,
        StatusCode::CREATED
    );
    app.drain().await;

    // Deployed again, it resumes on its data where it stopped: the note
    // posted meanwhile is handled once.
    let (status, body) = put_component(&app, "audit", component("audit"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.drain().await;
    assert_eq!(
        audited(&app).await,
        [("notes".to_owned(), 1), ("notes".to_owned(), 2)]
    );

    // Forced, notes goes although audit subscribes; audit gets nothing more.
    let (status, removed) = app
        .request("DELETE", "/admin/plugins/notes?force=true", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed["unsubscribed"], json!(["audit"]));
    assert!(
        removed["archived_as"]
            .as_str()
            .unwrap()
            .starts_with("notes")
    );
    assert_eq!(app.get("/notes/notes").await.0, StatusCode::NOT_FOUND);
    app.stop().await;

    // A restart leaves it out; a deploy brings it back with its notes.
    let app = TestApp::start(config, &plugins).await;
    assert_eq!(app.get("/notes/notes").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/audit/seen").await.0, StatusCode::OK);
    let (status, body) = put_component(&app, "notes", component("notes"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, count) = app.get("/notes/notes").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(count["count"], 2, "{count}");
    app.stop().await;
}

/// (compiled, cached): components compiled by Cranelift and loaded from the
/// compiled cache since the host started.
async fn compilations(app: &TestApp) -> (u64, u64) {
    let text = app.metrics().await;
    let count = |outcome: &str| {
        let prefix = format!("mercato_component_compilations_total{{outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {prefix} in /metrics"))
            .parse()
            .unwrap()
    };
    (count("compiled"), count("cached"))
}

/// The sha256 of a test component's bytes, as the registry names it.
fn sha256_of(name: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(component(name)))
}

/// The compiled cache's file for test component `name`.
fn compiled_file(data_dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let prefix = format!("{}-", sha256_of(name));
    let dir = data_dir.join("plugins").join("compiled");
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let file = p.file_name().unwrap().to_string_lossy();
            file.starts_with(&prefix) && file.ends_with(".cwasm")
        })
        .collect();
    assert_eq!(found.len(), 1, "one compiled file for {name} in {dir:?}");
    found.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_rollbacks_and_redeploys_load_compiled_code_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::common::config(dir.path());
    let plugins = ["notes", "audit"];
    let app = TestApp::start(config.clone(), &plugins).await;
    assert_eq!(
        compilations(&app).await,
        (2, 0),
        "a fresh data dir compiles"
    );
    let (status, body) = put_component(&app, "audit", component("audit-trap"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(compilations(&app).await, (3, 0));
    app.stop().await;
    for name in ["notes", "audit", "audit-trap"] {
        compiled_file(dir.path(), name);
    }

    // A torn file costs one compilation, never the start.
    let torn = compiled_file(dir.path(), "notes");
    let sound = std::fs::read(&torn).unwrap();
    std::fs::write(&torn, &sound[..sound.len() / 3]).unwrap();

    let app = TestApp::start(config.clone(), &plugins).await;
    // The deployed audit-trap and the shipped audit (prepared, then left out
    // for the deployed one) come from the cache; notes is compiled again.
    assert_eq!(compilations(&app).await, (1, 2));
    assert_eq!(
        std::fs::read(&torn).unwrap(),
        sound,
        "the torn file is rewritten"
    );
    assert_eq!(
        plugin_version(&app, "audit").await.1,
        sha256_of("audit-trap")
    );
    let (status, body) = app
        .post("/notes/notes", &json!({ "id": "n1", "body": "x" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.drain().await;
    assert_eq!(
        app.seen().await.len(),
        1,
        "cached code serves calls and events"
    );

    let (status, body) = app
        .request("POST", "/admin/plugins/audit/rollback", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        compilations(&app).await,
        (1, 3),
        "a rollback loads, never compiles"
    );
    assert_eq!(plugin_version(&app, "audit").await.1, sha256_of("audit"));
    assert_eq!(app.seen().await.len(), 1);

    // A version that served before is deployed from the cache too.
    let (status, body) = put_component(&app, "audit", component("audit-trap"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(compilations(&app).await, (1, 4));
    assert_eq!(
        plugin_version(&app, "audit").await.1,
        sha256_of("audit-trap")
    );
    app.stop().await;
}
