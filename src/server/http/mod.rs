//! The HTTP layer of `enclave server`: ms-enclave's routes (reference §4.4) and enclave's own
//! under `/v1`, over the `Service`. `app` builds the router and binds nothing; `serve` is the
//! only place that accepts connections.

mod auth;
mod compat;
mod cors;
mod error;
mod exec;
mod input;
mod log;
mod openapi;
mod session;
mod v1;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub(crate) use auth::{parse_keys_file, ApiKey, Keys, DEFAULT_TENANT};
pub(crate) use log::{LogFormat, Logger};

use self::error::ApiError;
use crate::server::service::{Caller, Service};

/// How the HTTP layer behaves, from `enclave server`'s flags.
pub(crate) struct Settings {
    pub(crate) keys: Keys,
    /// Origins whose browser pages may call the server (`--cors-origin`).
    pub(crate) cors_origins: Vec<HeaderValue>,
    /// Largest JSON body (`--max-body`).
    pub(crate) max_body: usize,
    /// Largest archive upload (`--max-archive`).
    pub(crate) max_archive: usize,
}

/// What every handler reaches: the service, the settings, the log.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) service: Arc<Service>,
    pub(crate) settings: Settings,
    pub(crate) logger: Logger,
    pub(crate) started: Instant,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The router: every route, authentication, CORS and the request log.
pub(crate) fn app(service: Arc<Service>, settings: Settings, logger: Logger) -> Router {
    let state = AppState(Arc::new(Inner {
        service,
        settings,
        logger,
        started: Instant::now(),
    }));
    let routes = routes().router;
    routes
        .fallback(|| async { ApiError::not_found_route() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        // Layers run outside-in in the reverse order of these calls: log, CORS, then the key.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cors::cors,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            log::log_requests,
        ))
        .with_state(state)
}

/// The router's routes, and a list of them (method, path) that the OpenAPI test checks.
pub(crate) struct Routes {
    router: Router<AppState>,
    pub(crate) listed: Vec<(&'static str, &'static str)>,
}

impl Routes {
    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        handler: MethodRouter<AppState>,
    ) -> Self {
        self.listed.push((method, path));
        self.router = self.router.route(path, handler);
        self
    }
}

/// Every route the server serves.
pub(crate) fn routes() -> Routes {
    let routes = Routes {
        router: Router::new(),
        listed: Vec::new(),
    };
    let routes = compat::routes(routes);
    let routes = v1::routes(routes);
    routes.add("GET", "/openapi.json", get(openapi::document))
}

fn get<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    on(MethodFilter::GET, handler)
}

fn post<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    on(MethodFilter::POST, handler)
}

fn put<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    on(MethodFilter::PUT, handler)
}

fn delete<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    on(MethodFilter::DELETE, handler)
}

/// The caller, as authentication found it.
pub(crate) struct Who(pub(crate) Arc<Caller>);

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Arc<Caller>>()
            .cloned()
            .map(Who)
            .ok_or_else(|| {
                ApiError::plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "error",
                    "the request was not authenticated",
                )
            })
    }
}

/// Path parameters, refused as JSON (axum's own rejection is plain text).
pub(crate) struct Params<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| Params(t))
            .map_err(|e| ApiError::plain(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))
    }
}

/// Runs `work` in a task of its own, with a token that is cancelled if the request goes away
/// first (the client disconnected) or the server shuts down: the work then stops what it
/// started, instead of being dropped halfway with processes left running in the sandbox. Work
/// that takes no notice of the token (a removal) still runs to its end.
pub(crate) async fn until_client_leaves<T, F>(
    service: &Service,
    work: impl FnOnce(CancellationToken) -> F,
) -> Result<T, ApiError>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let cancel = service.work_token();
    let _cancel_on_drop = cancel.clone().drop_guard();
    let task = service
        .spawn_work(work(cancel))
        .ok_or_else(ApiError::shutting_down)?;
    task.await.map_err(|e| {
        ApiError::plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "error",
            format!("the request's task failed: {e}"),
        )
    })
}

/// The 200 JSON response of a handler.
pub(crate) fn ok(body: &impl serde::Serialize) -> axum::response::Response {
    error::json_response(StatusCode::OK, body)
}

/// Serves `app` on `listener` until `shutdown` is cancelled; then stops accepting and lets the
/// requests under way finish, for `grace` at most. What still runs then is the service's to
/// cancel (`Service::shutdown`): the work of every request runs in a task it tracks.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> Result<()> {
    let stop = shutdown.clone();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stop.cancelled().await });
    let mut server = tokio::spawn(server.into_future());
    tokio::select! {
        done = &mut server => return done.context("the server task failed")?.context("serving"),
        () = shutdown.cancelled() => {}
    }
    match tokio::time::timeout(grace, &mut server).await {
        Ok(done) => done.context("the server task failed")?.context("serving"),
        Err(_) => {
            // The connections left are cut; their work is cancelled by `Service::shutdown`.
            server.abort();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_lists_every_route_and_no_other() {
        let document = openapi::parsed();
        let paths = document["paths"].as_object().unwrap();
        let served = routes().listed;
        for (method, path) in &served {
            let op = &paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} is not in openapi.json"))[method.to_lowercase()];
            assert!(op.is_object(), "{method} {path} is not in openapi.json");
        }
        for (path, ops) in paths {
            for method in ops.as_object().unwrap().keys() {
                let method = method.to_uppercase();
                assert!(
                    served.iter().any(|(m, p)| *m == method && p == path),
                    "openapi.json lists {method} {path}, which is not served"
                );
            }
        }
    }
}
