//! The operator's console (`/admin/console`) in a real browser: headless
//! Chromium driven through chromedriver, against a real host on a real port.
//! Each test signs in through the form, acts through the page, and checks the
//! outcome through the admin API. A screenshot of every page is written to
//! `target/console-screenshots/` for a human to look at.
//!
//! Needs `chromedriver` and `chromium` on the PATH (Debian: the `chromium`
//! and `chromium-driver` packages; `.ci/run` installs them). Without them the
//! tests fail and say so: they never skip.
use crate::common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long a page may take to show what a test waits for: a debug host on
/// two cores, beside other tests, answers in well under this.
const WAIT: Duration = Duration::from_secs(30);

/// A chromedriver child and everything it started, killed together on drop:
/// it runs in its own process group, which the browsers it starts join.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let mut child = tokio::process::Command::new("chromedriver")
            // Port 0: the driver picks a free one and names it on stdout.
            .arg("--port=0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start chromedriver ({e}): the console tests need headless Chromium. \
                     Install the `chromium` and `chromium-driver` packages \
                     (apt-get install chromium chromium-driver)"
                )
            });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut said = Vec::new();
        let port = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').parse::<u16>().ok();
                }
                said.push(line);
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("chromedriver did not start; it said: {said:?}"));
        // Its later output is read and dropped so a full pipe never blocks it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The browser is closed with its session at the end of a passing test;
        // after a failure the group still holds it.
        if let Some(id) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{id}")])
                .status();
        }
    }
}

/// The first `chromium` (or Chrome) binary on the PATH.
fn chromium() -> PathBuf {
    let names = ["chromium", "chromium-browser", "google-chrome"];
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no chromium on the PATH: the console tests need headless Chromium. \
                 Install the `chromium` and `chromium-driver` packages \
                 (apt-get install chromium chromium-driver)"
            )
        })
}

/// A headless browser on the console of one host.
struct Browser {
    client: Client,
    base: String,
    _driver: Driver,
}

impl Browser {
    async fn open(app: &TestApp) -> Browser {
        let driver = Driver::start().await;
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,900"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("chromedriver starts a headless Chromium session");
        Browser {
            client,
            base: format!("{}/admin/console", app.url),
            _driver: driver,
        }
    }

    /// Opens `route` (`#/events`) in a fresh page load.
    async fn goto(&self, route: &str) {
        self.client
            .goto(&format!("{}{route}", self.base))
            .await
            .unwrap();
    }

    /// Waits until `css` matches an element.
    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        self.wait_for(Locator::Css(css), css).await
    }

    /// Waits until `xpath` matches an element.
    async fn xpath(&self, xpath: &str) -> fantoccini::elements::Element {
        self.wait_for(Locator::XPath(xpath), xpath).await
    }

    async fn wait_for(&self, locator: Locator<'_>, what: &str) -> fantoccini::elements::Element {
        match self.client.wait().at_most(WAIT).for_element(locator).await {
            Ok(element) => element,
            Err(e) => panic!("no {what} within {WAIT:?}: {e}\n{}", self.shown().await),
        }
    }

    /// Waits until the element `css` shows `text`.
    async fn shows(&self, css: &str, text: &str) {
        let css = css.trim_start_matches('#');
        let scope = if css.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            format!("//*[@id='{css}']")
        } else {
            panic!("shows() takes an element id, not {css}");
        };
        self.xpath(&format!("{scope}[contains(., '{text}')]")).await;
    }

    /// What the page shows now, for a failure message.
    async fn shown(&self) -> String {
        let status = self.text_of("#status").await;
        let main = self.text_of("main").await;
        format!("status: {status}\npage:\n{main}")
    }

    async fn text_of(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(e) => format!("({e})"),
        }
    }

    async fn click(&self, css: &str) {
        self.element(css).await.click().await.unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        let input = self.element(css).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    /// Signs in through the form with `token`.
    async fn sign_in(&self, token: &str) {
        self.type_into("#token", token).await;
        self.click("#sign-in button[type=submit]").await;
    }

    /// Opens `route` and signs in with the host's token.
    async fn signed_in(&self, app: &TestApp, route: &str) {
        self.goto(route).await;
        self.sign_in(app.host.admin_token()).await;
        self.element("#nav:not([hidden])").await;
    }

    /// Writes a PNG of the window to `target/console-screenshots/<page>.png`.
    async fn screenshot(&self, page: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = screenshots();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{page}.png")), png).unwrap();
    }

    async fn close(self) {
        self.client.close().await.unwrap();
    }
}

/// Where screenshots go: under the build's target directory.
fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("console-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_deploys_a_version_and_rolls_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["notes", "audit"]).await;
    let browser = Browser::open(&app).await;
    browser.goto("#/plugins").await;

    browser.sign_in("not-the-admin-token").await;
    browser.shows("sign-in-error", "401 unauthorized").await;
    browser.screenshot("sign-in").await;
    browser.sign_in(app.host.admin_token()).await;
    let (before, _) = plugin_version(&app, "audit").await;
    browser
        .xpath(&format!(
            "//tr[@data-plugin='audit']/td[2][normalize-space()='{before}']"
        ))
        .await;

    // The upload form sends the file's bytes; the host names the new version.
    let wasm = dir.path().join("audit-trap.wasm");
    std::fs::write(&wasm, component("audit-trap")).unwrap();
    browser
        .element("#deploy-file")
        .await
        .send_keys(wasm.to_str().unwrap())
        .await
        .unwrap();
    browser.type_into("#deploy-name", "audit").await;
    browser.click("#deploy button[type=submit]").await;
    browser.shows("deploy-result", "0.2.0-trap").await;
    assert_eq!(plugin_version(&app, "audit").await.0, "0.2.0-trap");
    browser
        .xpath("//tr[@data-plugin='audit']/td[2][normalize-space()='0.2.0-trap']")
        .await;
    browser.click("button[data-key='manage:audit']").await;
    browser
        .xpath("//tr[@id='manage-audit']//table//th[normalize-space()='0.2.0-trap']")
        .await;
    browser.screenshot("plugins").await;

    browser.click("button[data-key='rollback:audit']").await;
    browser
        .xpath(&format!(
            "//tr[@data-plugin='audit']/td[2][normalize-space()='{before}']"
        ))
        .await;
    browser.shows("status", "Rolled back audit").await;
    assert_eq!(plugin_version(&app, "audit").await.0, before);
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_redriven_from_the_events_page() {
    // The fixture of hotswap's trapping-version test: a version of audit that
    // traps on hostile's pings dead-letters one, then the fix is deployed.
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.events.max_attempts = 2;
    let app = TestApp::start(config, &["notes", "audit", "hostile"]).await;
    let (status, body) = put_component(&app, "audit", component("audit-trap"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.post("/hostile/emit", &json!({})).await.0,
        StatusCode::ACCEPTED
    );
    app.drain().await;
    let letters = dead_letters(&app).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let event = letters[0]["event_id"].as_str().unwrap().to_owned();
    let (status, body) = put_component(&app, "audit", component("audit"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let browser = Browser::open(&app).await;
    browser.signed_in(&app, "#/events").await;
    let redrive = format!("button[data-event='{event}']");
    browser.element(&redrive).await;
    // Paused, the page is drawn only by the clicks below.
    browser.click("button[aria-pressed='false']").await;
    browser.element("button[aria-pressed='true']").await;
    browser.xpath("//h2[normalize-space()='Outboxes']").await;
    browser.screenshot("events").await;

    browser.click(&redrive).await;
    browser.shows("status", "Redrove 1 event").await;
    assert_eq!(dead_letters(&app).await, Vec::<Value>::new());
    browser.shows("main", "No dead letters").await;
    let seen = app.get("/audit/seen?source=hostile").await.1;
    assert_eq!(seen["events"][0]["event_id"], event.as_str(), "{seen}");
    browser.close().await;
    app.stop().await;
}

async fn dead_letters(app: &TestApp) -> Vec<Value> {
    let (status, events) = app.get("/admin/events").await;
    assert_eq!(status, StatusCode::OK, "{events}");
    events["dead_letters"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_found_and_its_timeline_names_each_event_and_handler() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(shop_config(dir.path()), &FULL_SHOP).await;
    product(&app, "TEE", 2_500, 10).await;
    app.drain().await;
    place(&app, "TEE", "someone-else").await;
    let id = place(&app, "TEE", "console-buyer").await;
    app.drain().await;

    let browser = Browser::open(&app).await;
    browser.signed_in(&app, "#/orders").await;
    browser.type_into("#order-buyer", "console-buyer").await;
    browser.click("#order-search button[type=submit]").await;
    // The form is drawn anew with the filter of the search that answered.
    browser.element("#order-buyer[value='console-buyer']").await;
    let link = format!("a[data-order='{id}']");
    browser.element(&link).await;
    let listed = browser.client.find_all(Locator::Css("a[data-order]")).await;
    assert_eq!(
        listed.unwrap().len(),
        1,
        "only the buyer's order is listed: {}",
        browser.shown().await
    );
    browser.screenshot("orders").await;

    browser.click(&link).await;
    browser.shows("main", "AWAITING_PAYMENT").await;
    let placed = browser
        .element("ol.timeline li[data-event-type='orders.OrderPlaced']")
        .await;
    let reserved = browser
        .element("ol.timeline li[data-event-type='inventory.StockReserved']")
        .await;
    let (inventory, _) = plugin_version(&app, "inventory").await;
    let (orders, _) = plugin_version(&app, "orders").await;
    let placed = placed.text().await.unwrap();
    assert!(
        placed.contains(&format!("inventory {inventory}")),
        "OrderPlaced is handled by inventory {inventory}: {placed}"
    );
    let reserved = reserved.text().await.unwrap();
    assert!(
        reserved.contains(&format!("orders {orders}")),
        "StockReserved is handled by orders {orders}: {reserved}"
    );
    // The timeline is what the picture is for.
    browser
        .client
        .execute(
            "document.getElementById('timeline-heading').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    browser.screenshot("order").await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_page_shows_each_rules_cost_and_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(shop_config(dir.path()), &["coupons", "tiered-spend"]).await;
    let (status, body) = app
        .post(
            "/coupons",
            &json!({ "code": "SPEND", "kind": "rule", "rule": "tiered-spend", "currency": "EUR",
                "config": { "tiers": [{ "min_subtotal": 10_000, "percent": 5 }] } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for quantity in [1, 8] {
        let lines = json!([{ "sku": "TEE", "quantity": quantity, "unit_price_minor": 2_500 }]);
        let (status, body) = app
            .post(
                "/coupons/SPEND/quote",
                &json!({ "currency": "EUR", "buyer_id": "q", "lines": lines }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, plugins) = app.get("/admin/plugins").await;
    let rule = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "tiered-spend")
        .unwrap()
        .clone();
    let calls = rule["evaluations"]["calls"].as_u64().unwrap();
    let rejections = rule["evaluations"]["rejections"].as_object().unwrap();
    assert!(
        !rejections.is_empty(),
        "the small cart was declined: {rule}"
    );

    let browser = Browser::open(&app).await;
    browser.signed_in(&app, "#/rules").await;
    let section = "//section[@data-rule='tiered-spend']";
    browser
        .xpath(&format!(
            "{section}//table[1]//td[1][normalize-space()='{calls}']"
        ))
        .await;
    for (reason, n) in rejections {
        browser
            .xpath(&format!(
                "{section}//tr[th[normalize-space()='{reason}']]/td[normalize-space()='{n}']"
            ))
            .await;
    }
    browser.screenshot("rules").await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_with_strict_headers_and_no_data_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(config(dir.path()), &["notes"]).await;
    let get = |path: &str| app.anonymous.get(format!("{}{path}", app.url)).send();
    for (path, kind) in [
        ("/admin/console", "text/html"),
        ("/admin/console/", "text/html"),
        ("/admin/console/assets/console.js", "text/javascript"),
        ("/admin/console/assets/console.css", "text/css"),
    ] {
        let response = get(path).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        assert!(
            header("content-security-policy").contains("script-src 'self'; style-src 'self'"),
            "{path}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        // Revalidation costs a 304 and no body.
        let etag = header("etag");
        let again = app
            .anonymous
            .get(format!("{}{path}", app.url))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
    let (status, body) = app
        .request_anonymous("GET", "/admin/console/assets/secrets.js", None, &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    // The page holds no data: its settings need the token like the admin API.
    let (status, body) = app
        .request_anonymous("GET", "/admin/console/config.json", None, &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = app.get("/admin/console/config.json").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "trace_url": null }))
    );
    let (_, doc) = app.get("/openapi.json").await;
    for path in [
        "/admin/console",
        "/admin/console/assets/{file}",
        "/admin/console/config.json",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} undocumented");
    }
    assert_eq!(
        doc["paths"]["/admin/console/config.json"]["get"]["security"],
        json!([{ "adminToken": [] }])
    );
    app.stop().await;
}
