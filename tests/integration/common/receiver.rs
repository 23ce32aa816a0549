//! A webhook receiver for the outbound tests: a real HTTP server on a
//! loopback port that records every request and answers as its path says.
//!
//! - `/ok` answers 200.
//! - `/fail` answers 500.
//! - `/flaky/{n}` fails (503) the first `n` requests of each
//!   `Mercato-Delivery-Id` (or of the path, without one), then answers 200.
//! - `/slow` never answers (the host's timeout has to cut it off); `arrived`
//!   is notified when such a request is in.
//! - `/huge` answers 200 with an endless body.
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    seen_per_id: Mutex<HashMap<String, usize>>,
    arrived: Notify,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .route("/{*path}", any(answer))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            addr,
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until a `/slow` request is in.
    pub async fn slow_request_arrived(&self) {
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            self.shared.arrived.notified(),
        )
        .await
        .expect("the slow request arrived");
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let id = headers
        .get("mercato-delivery-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(&path)
        .to_owned();
    shared.received.lock().unwrap().push(Received {
        path: format!("/{path}"),
        headers,
        body,
    });
    let seen = {
        let mut per_id = shared.seen_per_id.lock().unwrap();
        let n = per_id.entry(id).or_default();
        *n += 1;
        *n
    };
    let respond = |status: StatusCode, body: Body| {
        axum::response::Response::builder()
            .status(status)
            .body(body)
            .unwrap()
    };
    let mut parts = path.split('/');
    match (parts.next(), parts.next()) {
        (Some("ok"), _) => respond(StatusCode::OK, Body::from("thanks")),
        (Some("fail"), _) => respond(StatusCode::INTERNAL_SERVER_ERROR, Body::from("broken")),
        (Some("flaky"), Some(n)) if seen <= n.parse::<usize>().unwrap() => {
            respond(StatusCode::SERVICE_UNAVAILABLE, Body::from("try later"))
        }
        (Some("flaky"), _) => respond(StatusCode::OK, Body::from("thanks at last")),
        (Some("slow"), _) => {
            shared.arrived.notify_one();
            std::future::pending::<()>().await;
            unreachable!()
        }
        (Some("huge"), _) => {
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let endless =
                futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            respond(StatusCode::OK, Body::from_stream(endless))
        }
        _ => respond(StatusCode::NOT_FOUND, Body::from("no such path")),
    }
}
