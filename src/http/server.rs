//! The connection loop: accepts TCP connections and serves HTTP/1.1 (and h2c) on them with
//! limits that `axum::serve` does not offer — a cap on open connections, a deadline for a
//! request's head counted from its first byte, and an idle (keep-alive) timeout — so slow or
//! idle clients cannot hold the server's memory and file descriptors.
//!
//! Each connection has a watchdog that knows whether a request is in progress (a response,
//! streamed bodies included, is being produced), whether the next request has started to
//! arrive, and since when. A connection past its deadline is dropped, which closes the socket.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::metrics::ConnMetrics;

/// What a connection may cost.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// From the first byte of a request to the end of its head.
    pub header_read_timeout: Duration,
    /// With no request in progress or arriving.
    pub keep_alive_timeout: Duration,
    /// Open connections at once; more are answered 503 and closed.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `stop` is cancelled; then stops accepting, asks every
/// connection to finish its request in progress and close, and waits for them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    stats: ConnMetrics,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let conns = TaskTracker::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The watchdog below does the timing; hyper's own header timer would also restart on
    // idle connections and cut keep-alive short.
    // A client that hangs up after sending a whole request does not cancel it: its handler
    // runs to the end (a chat turn is answered and stored) and only the reply is lost. Without
    // half_close, hyper drops the handler as soon as it sees the end of the stream.
    builder.http1().header_read_timeout(None).half_close(true);
    let builder = Arc::new(builder);
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors, or a connection reset before we took it: wait a
                // moment instead of spinning, then go on.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.refused.inc();
            conns.spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (router, builder, stats, stop) =
            (router.clone(), builder.clone(), stats.clone(), stop.clone());
        conns.spawn(async move {
            stats.open.inc();
            serve_conn(stream, peer, router, &builder, limits, &stats, stop).await;
            stats.open.dec();
            drop(slot);
        });
    }
    conns.close();
    conns.wait().await;
}

/// The answer to a connection over the cap: a complete 503 problem, then close.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str = r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"The server has too many open connections; retry shortly.","code":"SERVICE_UNAVAILABLE"}"#;
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        BODY.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(BODY.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

async fn serve_conn(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    builder: &auto::Builder<TokioExecutor>,
    limits: ConnLimits,
    stats: &ConnMetrics,
    stop: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let guard = activity.begin();
            req.extensions_mut().insert(ConnectInfo(peer));
            let call = router.clone().oneshot(req.map(Body::new));
            async move {
                let res: Response<Body> = match call.await {
                    Ok(res) => res,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(res.map(|body| GuardedBody {
                    body,
                    _guard: guard,
                }))
            }
        })
    };
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let deadline = activity.deadline(limits);
        tokio::select! {
            _ = conn.as_mut() => return,
            // A request began, ended or started to arrive: the deadline moved.
            () = activity.changed.notified() => {}
            () = stop.cancelled(), if !closing => {
                // Finish the request in progress, then close.
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = sleep_until(deadline) => {
                if activity.deadline(limits).is_some_and(|d| d <= Instant::now()) {
                    stats.timed_out.inc();
                    return; // dropping the connection closes the socket
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What the watchdog knows about a connection. Times are milliseconds since `origin`;
/// `head_started` 0 means no request is arriving.
struct Activity {
    changed: Notify,
    origin: Instant,
    in_flight: AtomicUsize,
    idle_since: AtomicU64,
    head_started: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            changed: Notify::new(),
            origin: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        // At least 1, so that 0 can mean "none".
        (self.origin.elapsed().as_millis() as u64).max(1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms)
    }

    /// A request's head is complete and its handler starts: no deadline until its response
    /// is over.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Release);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// Bytes arrived: if no request is in progress, a new one has started.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Acquire) == 0
        {
            self.head_started.store(self.now_ms(), Ordering::Release);
            self.changed.notify_one();
        }
    }

    /// When the connection should be closed, if nothing changes before then.
    fn deadline(&self, limits: ConnLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.head_started.load(Ordering::Acquire) {
            0 => Some(self.at(self.idle_since.load(Ordering::Acquire)) + limits.keep_alive_timeout),
            started => Some(self.at(started) + limits.header_read_timeout),
        }
    }
}

/// A request in progress; dropped when its response body is done (or abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since.store(a.now_ms(), Ordering::Release);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
        a.changed.notify_one();
    }
}

/// A response body that ends the request's in-flight state when it is done or dropped.
struct GuardedBody {
    body: Body,
    _guard: InFlight,
}

impl hyper::body::Body for GuardedBody {
    type Data = <Body as hyper::body::Body>::Data;
    type Error = <Body as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling the watchdog when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
