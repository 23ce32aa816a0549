//! The native baseline for `GET /orders/{id}`: axum + sqlx, the same four
//! queries in one read transaction and the same JSON as the orders plugin's
//! `get` / `load` / `view` (plugins/orders/src/lib.rs), on the same `orders.db`
//! the host writes, opened read-only. It exists only to be measured against;
//! when the plugin's endpoint changes, change this with it (the harness checks
//! both answer the same before timing).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, SqliteConnection};

/// As many connections as the host gives a plugin's readers.
const CONNECTIONS: u32 = 4;

pub struct NativeServer {
    pub url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl NativeServer {
    pub async fn start(orders_db: &std::path::Path) -> anyhow::Result<NativeServer> {
        let options = SqliteConnectOptions::new()
            .filename(orders_db)
            .read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(CONNECTIONS)
            .connect_with(options)
            .await?;
        let app = axum::Router::new()
            .route("/orders/{id}", get(get_order))
            .with_state(pool);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(NativeServer { url, stop, server })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.await??;
        Ok(())
    }
}

/// A failure, answered like the host answers one.
struct Failure(StatusCode, &'static str, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.1, "message": self.2 } });
        (self.0, Json(body)).into_response()
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_error",
            e.to_string(),
        )
    }
}

async fn get_order(
    State(pool): State<SqlitePool>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Failure> {
    // One transaction, as the host runs a GET: the four reads see one snapshot.
    let mut tx = pool.begin().await?;
    let order = view(&mut tx, &id).await?;
    tx.rollback().await?;
    order.map(Json).ok_or_else(|| {
        Failure(
            StatusCode::NOT_FOUND,
            "unknown_order",
            format!("no order {id}"),
        )
    })
}

async fn view(conn: &mut SqliteConnection, id: &str) -> Result<Option<Value>, sqlx::Error> {
    let Some(o) = sqlx::query(
        "SELECT id, buyer_id, currency, status, stock_status, coupon_status, coupon_code, subtotal_minor, \
         discount_minor, payment_intent_id, captured_minor, refunded_minor, version, \
         shipping_address_json, checkout_session_id, fulfillment_status, coupon_rejection_code, \
         coupon_rejection_rule_code, coupon_rejection_message, coupon_rejection_outcome \
         FROM orders WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let items = sqlx::query(
        "SELECT sku, product_id, quantity, unit_price_minor, line_total_minor, product_snapshot_json \
         FROM order_items WHERE order_id = $1 ORDER BY line_no",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(json!({
            "sku": r.try_get::<String, _>("sku")?,
            "product_id": r.try_get::<String, _>("product_id")?,
            "quantity": r.try_get::<i64, _>("quantity")?,
            "unit_price_minor": r.try_get::<i64, _>("unit_price_minor")?,
            "line_total_minor": r.try_get::<i64, _>("line_total_minor")?,
            "product": serde_json::from_str::<Value>(r.try_get::<&str, _>("product_snapshot_json")?).unwrap_or(Value::Null),
        }))
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let history = sqlx::query(
        "SELECT from_status, to_status, reason, created_at FROM order_status_history WHERE order_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(json!({
            "from": r.try_get::<Option<String>, _>("from_status")?,
            "to": r.try_get::<String, _>("to_status")?,
            "reason": r.try_get::<String, _>("reason")?,
            "at": r.try_get::<String, _>("created_at")?,
        }))
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let shipments = sqlx::query(
        "SELECT shipment_id, status, carrier, tracking_number, COALESCE(updated_at, created_at) AS updated_at \
         FROM order_shipments WHERE order_id = $1 ORDER BY created_at, shipment_id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(json!({
            "shipment_id": r.try_get::<String, _>("shipment_id")?,
            "status": r.try_get::<String, _>("status")?,
            "carrier": r.try_get::<Option<String>, _>("carrier")?,
            "tracking_number": r.try_get::<Option<String>, _>("tracking_number")?,
            "updated_at": r.try_get::<String, _>("updated_at")?,
        }))
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let shipping_address = o
        .try_get::<Option<&str>, _>("shipping_address_json")?
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .unwrap_or(Value::Null);
    let subtotal: i64 = o.try_get("subtotal_minor")?;
    let discount: i64 = o.try_get("discount_minor")?;
    Ok(Some(json!({
        "id": o.try_get::<String, _>("id")?,
        "buyer_id": o.try_get::<String, _>("buyer_id")?,
        "status": o.try_get::<String, _>("status")?,
        "currency": o.try_get::<String, _>("currency")?,
        "items": items,
        "subtotal_minor": subtotal,
        "discount_minor": discount,
        "total_minor": subtotal - discount,
        "coupon_code": o.try_get::<Option<String>, _>("coupon_code")?,
        "coupon_status": o.try_get::<String, _>("coupon_status")?,
        "coupon_rejection": match o.try_get::<Option<String>, _>("coupon_rejection_code")? {
            None => Value::Null,
            Some(code) => json!({
                "code": code,
                "rule_code": o.try_get::<Option<String>, _>("coupon_rejection_rule_code")?,
                "message": o.try_get::<Option<String>, _>("coupon_rejection_message")?,
                "outcome": o.try_get::<Option<String>, _>("coupon_rejection_outcome")?,
            }),
        },
        "stock_status": o.try_get::<String, _>("stock_status")?,
        "payment_intent_id": o.try_get::<Option<String>, _>("payment_intent_id")?,
        "captured_minor": o.try_get::<i64, _>("captured_minor")?,
        "refunded_minor": o.try_get::<i64, _>("refunded_minor")?,
        "status_history": history,
        "shipping_address": shipping_address,
        "checkout_session_id": o.try_get::<Option<String>, _>("checkout_session_id")?,
        "fulfillment_status": o.try_get::<String, _>("fulfillment_status")?,
        "shipments": shipments,
        "version": o.try_get::<i64, _>("version")?,
    })))
}
