//! The HTTP server: one [`router`] with every route, served by hyper connection by
//! connection so that a handler can make the connection drop without any response (fault
//! `drop_connection`): a response carrying [`DropConnection`] becomes a service error, and
//! hyper closes the connection without writing anything.

use crate::sandbox::Sandbox;
use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower_service::Service;

/// Marks a response that must not be sent: the connection is closed instead.
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose (fault injection)")]
struct DroppedOnPurpose;

/// Every route of the sandbox. Further modules (pages, bill downloads) merge theirs here.
pub fn router(sandbox: Sandbox) -> Router {
    Router::new()
        .merge(crate::gateway::routes())
        .merge(crate::control::routes())
        .merge(crate::bill::routes())
        .merge(crate::ui::routes())
        .with_state(sandbox)
}

/// Accepts connections until the sandbox shuts down, then drops the open ones.
pub(crate) async fn serve(listener: TcpListener, router: Router, sandbox: Sandbox) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = sandbox.shutting_down() => break,
        };
        // Reap finished connection tasks so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut router = router.clone();
            async move {
                let response = match router.call(request.map(Body::new)).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                if response.extensions().get::<DropConnection>().is_some() {
                    return Err(DroppedOnPurpose);
                }
                Ok::<_, DroppedOnPurpose>(response)
            }
        });
        connections.spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    connections.shutdown().await;
}
