//! The HTTP port's transport: accepting connections (TLS when configured),
//! serving them with hyper (HTTP/1.1 and HTTP/2) and draining them on
//! shutdown. What the port says is [`crate::api::http`]'s.
//!
//! Built on hyper-util rather than `axum::serve` for what a port exposed to
//! a network needs and `axum::serve` does not set: a deadline for a client's
//! request headers (a client trickling them would hold its connection for
//! ever), HTTP/2 keepalive pings, a TLS handshake deadline, handshakes that
//! do not wait for each other, and `TCP_NODELAY` on every socket (as the
//! gRPC port: no Nagle delay on small answers), and a cap on the
//! connections open at once (`--max-http-connections`: past it, clients
//! wait in the kernel's listen backlog rather than each costing a task and
//! buffers here).

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_rustls::TlsAcceptor;

/// A client must send its request headers within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// And finish its TLS handshake within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 pings find peers that vanished without closing the connection.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting and waits for the open connections to finish the requests
/// they have started (HTTP/2 gets a GOAWAY, HTTP/1.1 closes after its
/// current request).
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: axum::Router,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A place for the next connection before accepting it.
        let place = tokio::select! {
            () = &mut shutdown => break,
            place = Arc::clone(&connections).acquire_owned() => match place {
                Ok(place) => place,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(%error, "HTTP port: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (builder, tls, watcher) = (builder.clone(), tls.clone(), graceful.watcher());
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _place = place;
            let served = match tls {
                None => watcher.watch(builder.serve_connection(TokioIo::new(tcp), service).into_owned()).await,
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        watcher.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned()).await
                    }
                    Ok(Err(error)) => return handshake_failed(peer, &error.to_string()),
                    Err(_) => return handshake_failed(peer, "timed out"),
                },
            };
            if let Err(error) = served {
                tracing::debug!(%peer, %error, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

fn handshake_failed(peer: SocketAddr, reason: &str) {
    tracing::debug!(%peer, reason, "HTTP port: TLS handshake failed");
}
