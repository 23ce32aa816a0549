//! The accept loop: HTTP/1.1 on hyper with the limits a hostile client must not
//! get around (see `[http]` in the configuration).
//!
//! - **Connections**: at most `max_connections` are served at once. The loop
//!   takes a permit *before* accepting, so excess connections wait in the
//!   kernel's listen backlog (connected, unanswered) until one closes.
//! - **Headers**: a connection must deliver complete request headers within
//!   `header_read_timeout` of opening, or of the first byte of a later request
//!   on it; otherwise it is closed without an answer.
//! - **Idle**: a keep-alive connection with no request in flight is closed after
//!   `keep_alive_timeout`.
//! - **Body**: a request body must be complete within `body_read_timeout` of
//!   its headers; reading it then fails with [`BodyTimeout`], which the handlers
//!   answer with 408 and `Connection: close`.
//!
//! hyper's own `header_read_timeout` is not used: it also runs while a
//! keep-alive connection idles, which would cut every idle connection at the
//! (shorter) header timeout and make the keep-alive timeout meaningless.
use crate::config::HttpConfig;
use axum::Router;
use axum::body::{Body, Bytes};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The `[http]` settings as durations.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_read: Duration,
    body_read: Duration,
    keep_alive: Duration,
}

impl From<&HttpConfig> for Limits {
    fn from(config: &HttpConfig) -> Self {
        Limits {
            header_read: Duration::from_millis(config.header_read_timeout_ms),
            body_read: Duration::from_millis(config.body_read_timeout_ms),
            keep_alive: Duration::from_millis(config.keep_alive_timeout_ms),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops
/// accepting, lets each connection finish the request it is answering, and
/// waits up to `grace` for that before closing the rest.
pub(super) async fn run(
    router: Router,
    listener: TcpListener,
    config: &HttpConfig,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let limits = Limits::from(config);
    let slots = Arc::new(Semaphore::new(config.max_connections as usize));
    // `closing`: finish the current request, then close. `abandon`: close now.
    let closing = CancellationToken::new();
    let abandon = CancellationToken::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        tokio::spawn(connection(
            stream,
            router.clone(),
            limits,
            closing.clone(),
            abandon.clone(),
            permit,
        ));
    }
    drop(listener);
    closing.cancel();
    // Every connection holds a permit until it ends: all permits back = all closed.
    let all = config.max_connections;
    tokio::select! {
        _ = slots.acquire_many(all) => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over; abandoning in-flight requests");
            abandon.cancel();
        }
    }
}

/// A failed accept. Errors of one connection are ignored; others (such as
/// running out of file descriptors) would repeat at once, so wait a little.
async fn accept_failed(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one connection, closing it when a header or idle deadline passes.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    closing: CancellationToken,
    abandon: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |request: hyper::Request<Incoming>| {
            let in_flight = activity.request_started();
            let request = request.map(|body| Body::new(Deadline::new(body, limits.body_read)));
            let response = router.clone().oneshot(request);
            async move {
                let response = response.await?;
                Ok::<_, Infallible>(response.map(|body| Tracked {
                    body,
                    _in_flight: in_flight,
                }))
            }
        }
    });
    // hyper's header timeout stays off (its default warns without a timer); see the module doc.
    let conn = http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(io, service);
    let mut conn = pin!(conn);
    let mut timer = pin!(tokio::time::sleep(Duration::ZERO));
    let mut asked_to_close = false;
    loop {
        let deadline = activity.deadline(&limits);
        if let Some((at, _)) = deadline {
            timer.as_mut().reset(at);
        }
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = activity.changed.notified() => {}
            () = timer.as_mut(), if deadline.is_some() => {
                // The phase may have changed as the timer fired; judge the current one.
                if let Some((at, reason)) = activity.deadline(&limits)
                    && at <= Instant::now()
                {
                    tracing::debug!(reason, "closing a connection");
                    return;
                }
            }
            () = closing.cancelled(), if !asked_to_close => {
                asked_to_close = true;
                conn.as_mut().graceful_shutdown();
            }
            () = abandon.cancelled() => return,
        }
    }
}

/// What a connection is doing, which decides the deadline that applies.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Reading request headers since then (opened, or a byte after idling).
    Headers(Instant),
    /// Answering this many requests; the body deadline is per request.
    Busy(usize),
    /// Between requests since then.
    Idle(Instant),
}

/// A connection's phase, shared by its socket, its service and its watchdog.
struct Activity {
    phase: Mutex<Phase>,
    /// Wakes the watchdog when the phase changes (one waiter: `notify_one`
    /// keeps a wake-up that comes while it is busy).
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Activity {
            phase: Mutex::new(Phase::Headers(Instant::now())),
            changed: Notify::new(),
        }
    }

    fn update(&self, change: impl FnOnce(Phase) -> Option<Phase>) {
        let mut phase = self.phase.lock().expect("phase poisoned");
        if let Some(next) = change(*phase) {
            *phase = next;
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: after idling, they start the next request's headers.
    fn read(&self) {
        self.update(|phase| match phase {
            Phase::Idle(_) => Some(Phase::Headers(Instant::now())),
            Phase::Headers(_) | Phase::Busy(_) => None,
        });
    }

    /// hyper has parsed a request's headers.
    fn request_started(self: &Arc<Self>) -> InFlight {
        self.update(|phase| match phase {
            Phase::Busy(n) => Some(Phase::Busy(n + 1)),
            Phase::Headers(_) | Phase::Idle(_) => Some(Phase::Busy(1)),
        });
        InFlight(self.clone())
    }

    fn request_finished(&self) {
        self.update(|phase| match phase {
            Phase::Busy(n) if n > 1 => Some(Phase::Busy(n - 1)),
            _ => Some(Phase::Idle(Instant::now())),
        });
    }

    /// When the connection is to be closed unless something happens, and why.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, &'static str)> {
        match *self.phase.lock().expect("phase poisoned") {
            Phase::Headers(since) => Some((since + limits.header_read, "header read timeout")),
            Phase::Busy(_) => None,
            Phase::Idle(since) => Some((since + limits.keep_alive, "idle keep-alive timeout")),
        }
    }
}

/// A request being answered, until hyper drops its response body (sent or not).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// The socket, reporting reads to the connection's [`Activity`].
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A response body that keeps its request in flight until it is dropped.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The request body had not fully arrived when its time was up.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} ms", .0.as_millis())]
pub struct BodyTimeout(pub Duration);

/// A request body with a deadline for all of it, not per frame: a body
/// trickled a byte at a time still ends on time.
struct Deadline {
    body: Incoming,
    timeout: Duration,
    deadline: Instant,
    /// Set on the first read, so bodiless requests arm no timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    fn new(body: Incoming, timeout: Duration) -> Self {
        Deadline {
            body,
            timeout,
            deadline: Instant::now() + timeout,
            timer: None,
        }
    }
}

impl hyper::body::Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))));
        }
        Pin::new(&mut this.body).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
