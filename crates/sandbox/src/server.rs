//! The HTTP(S) listener loop shared by all sandbox services.
//!
//! Each accepted connection gets a [`ConnectionControl`] in its requests' extensions so the
//! fault middleware can close the connection without answering ("drop").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Per-connection handle that lets a handler drop the connection without a response.
#[derive(Clone, Debug)]
pub struct ConnectionControl {
    kill: Arc<Notify>,
}

impl ConnectionControl {
    /// Closes the connection as soon as possible, without answering.
    pub fn drop_connection(&self) {
        self.kill.notify_one();
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled.
pub(crate) fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "sandbox listener accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let acceptor = acceptor.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let kill = Arc::new(Notify::new());
                let ctl = ConnectionControl { kill: kill.clone() };
                let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                    req.extensions_mut().insert(ctl.clone());
                    router.clone().oneshot(req)
                });
                match acceptor {
                    Some(acc) => {
                        let Ok(Ok(tls)) =
                            tokio::time::timeout(Duration::from_secs(10), acc.accept(stream)).await
                        else {
                            return;
                        };
                        serve_conn(TokioIo::new(tls), svc, kill, shutdown).await
                    }
                    None => serve_conn(TokioIo::new(stream), svc, kill, shutdown).await,
                }
            });
        }
    })
}

async fn serve_conn<I, S>(io: I, svc: S, kill: Arc<Notify>, shutdown: CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = kill.notified() => {}
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
        }
    }
}

/// Binds 127.0.0.1 on `port` (0 = any free port).
pub(crate) async fn bind(port: u16) -> std::io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind(("127.0.0.1", port)).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}
