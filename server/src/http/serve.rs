//! Serving on a socket with limits on every connection: at most [`MAX_CONNECTIONS`] at once
//! (the rest wait in the kernel's backlog), request headers read within
//! [`HEADER_READ_TIMEOUT`] (a slow or silent client is dropped), every request answered or
//! cut within [`REQUEST_TIMEOUT`] (WebSocket streams, once upgraded, are not requests), and
//! a clean stop on a signal: no new connections, open ones finish.
//!
//! `axum::serve` sets no header timeout (hyper needs a timer for one), so this is an accept
//! loop over hyper's HTTP/1 connections with a Tokio timer (HTTP/1 only: what browsers and
//! WebSockets use here, and no HTTP/2 stack to build).

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower::Layer;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request (not an upgraded stream) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The router with the per-request time limit.
pub fn bounded(app: Router) -> Router {
    app.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        REQUEST_TIMEOUT,
    ))
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish
/// (at most 30 s).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = bounded(app);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(64 * 1024);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => permit.expect("the connection semaphore is never closed"),
        };
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = axum::Extension(axum::extract::ConnectInfo(peer)).layer(app.clone());
        let connection = http
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(());
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), drain)
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 30 s; stopping anyway");
    }
    Ok(())
}
