//! The listener: accepts connections under a cap and serves each with hyper's HTTP/1 server,
//! with a timer, so that a client cannot hold the gateway by being slow.
//!
//! - At most `max_connections` connections are served at once; the next ones wait in the
//!   kernel's accept backlog until one closes.
//! - A connection waiting for a request (fresh, or idle between keep-alive requests) is closed
//!   after `idle_timeout`; once the first byte of a request has arrived, its head must be
//!   complete within `header_read_timeout`. hyper's own header timer (which runs from the
//!   moment a connection waits for a request) is set to their sum, as a backstop.
//! - A request body must arrive within `body_read_timeout` (tower-http's layer, in the app).
//! - On shutdown the listener closes, idle connections close, and requests in flight (streams
//!   included) finish before [`serve`](crate::serve) returns.
//!
//! Socket deadlines run on real time (a [`SystemClock`]), like hyper's own timer; the
//! gateway's [`Clock`] (manual in tests) keeps governing windows and budgets.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use switchyard_core::{Clock, SystemClock};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};

/// The largest request head (request line and headers) accepted, in bytes; a larger one is
/// answered 431 by hyper.
pub(crate) const MAX_HEADER_BYTES: usize = 64 << 10;

/// The connection limits of one listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) header_read: Duration,
    pub(crate) idle: Duration,
    pub(crate) max_connections: usize,
}

pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read.saturating_add(limits.idle))
        .max_header_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    let service = TowerToHyperService::new(app);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => {
                permit.expect("invariant: the connection semaphore is never closed")
            }
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors, or a connection reset before it was accepted: wait
                    // a moment rather than spin, and keep serving.
                    tracing::warn!(%error, "accepting a connection failed");
                    drop(permit);
                    clock.sleep_until(clock.now() + Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Streams send small frames: send each at once.
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new(clock.now()));
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: Arc::clone(&activity),
            clock: Arc::clone(&clock),
        });
        let service = {
            let service = service.clone();
            let activity = Arc::clone(&activity);
            let clock = Arc::clone(&clock);
            hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let guard = activity.begin(Arc::clone(&clock));
                let answered = hyper::service::Service::call(&service, request);
                async move {
                    let response = answered.await;
                    drop(guard);
                    response
                }
            })
        };
        let connection = graceful.watch(builder.serve_connection(io, service));
        let clock = Arc::clone(&clock);
        tokio::spawn(async move {
            tokio::select! {
                served = connection => {
                    if let Err(error) = served {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                }
                () = watchdog(&activity, clock.as_ref(), limits) => {
                    tracing::debug!("closed a connection that was idle or slow to send its request");
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// What a connection has been doing, for its watchdog.
struct Activity {
    state: Mutex<Times>,
    /// Woken when a request head starts: its deadline may be nearer than the idle one.
    head_started: Notify,
}

struct Times {
    /// Requests whose handler is running.
    in_flight: usize,
    /// The last byte read or written, or the last handler finishing.
    last_io: Instant,
    /// When the first byte of the request being read arrived.
    head_started: Option<Instant>,
}

impl Activity {
    fn new(now: Instant) -> Self {
        Self {
            state: Mutex::new(Times { in_flight: 0, last_io: now, head_started: None }),
            head_started: Notify::new(),
        }
    }

    fn times(&self) -> std::sync::MutexGuard<'_, Times> {
        // Nothing awaits while the lock is held, and the times stay valid after a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self, now: Instant) {
        let mut times = self.times();
        times.last_io = now;
        if times.in_flight == 0 && times.head_started.is_none() {
            times.head_started = Some(now);
            drop(times);
            self.head_started.notify_one();
        }
    }

    fn wrote(&self, now: Instant) {
        self.times().last_io = now;
    }

    fn begin(self: &Arc<Self>, clock: Arc<dyn Clock>) -> InFlight {
        let mut times = self.times();
        times.in_flight += 1;
        times.head_started = None;
        InFlight { activity: Arc::clone(self), clock }
    }

    /// When the connection is to be closed if nothing happens before; `None` while a
    /// handler runs.
    fn deadline(&self, limits: Limits) -> Option<Instant> {
        let times = self.times();
        if times.in_flight > 0 {
            return None;
        }
        let (since, limit) = match times.head_started {
            Some(started) => (started, limits.header_read),
            None => (times.last_io, limits.idle),
        };
        // Limits are at most a day (checked at config load); saturate all the same.
        Some(since.checked_add(limit).unwrap_or(since))
    }
}

/// A request whose handler runs; dropping it marks the connection active now.
struct InFlight {
    activity: Arc<Activity>,
    clock: Arc<dyn Clock>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut times = self.activity.times();
        times.in_flight = times.in_flight.saturating_sub(1);
        times.last_io = self.clock.now();
    }
}

/// Returns when the connection has waited too long for a request or its head.
async fn watchdog(activity: &Activity, clock: &dyn Clock, limits: Limits) {
    loop {
        let now = clock.now();
        let wake_at = match activity.deadline(limits) {
            Some(deadline) if deadline <= now => return,
            Some(deadline) => deadline,
            // A handler runs: look again an idle period later.
            None => now.checked_add(limits.idle).unwrap_or(now),
        };
        tokio::select! {
            () = clock.sleep_until(wake_at) => {}
            () = activity.head_started.notified() => {}
        }
    }
}

/// The socket, noting each read and write for the watchdog.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
    clock: Arc<dyn Clock>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read(this.clock.now());
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote(this.clock.now());
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote(this.clock.now());
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
