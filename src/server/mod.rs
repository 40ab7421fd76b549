//! The HTTP server: thin handlers that parse, call one method of [`Belroute`] and answer;
//! authentication sits in front of them ([`auth`]).

mod api;
mod auth;
mod changes;
mod client;
pub mod console;
pub mod error;
mod health;
mod hooks;
pub mod limits;
mod subscriptions;
pub mod throttle;

pub use auth::same_secret;

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;

use crate::app::Belroute;

/// How to listen.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen: String,
    /// Worker threads; the number of CPUs when `None`.
    pub workers: Option<usize>,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            listen: "0.0.0.0:8080".into(),
            workers: None,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// A started server.
#[derive(Debug)]
pub struct Running {
    addrs: Vec<SocketAddr>,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The first bound address (the real port when listening on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Stops accepting, lets requests in flight finish, and returns when the server is down.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
    }

    /// Runs until SIGTERM or SIGINT, then drains and stops gracefully: `/healthz` and
    /// `/readyz` answer `503 draining` for `hooks.drain` (calls are still answered), so a load
    /// balancer sends new calls elsewhere; then the server stops accepting and finishes the
    /// requests in flight.
    pub async fn run_until_signal(self, app: &Belroute) -> anyhow::Result<()> {
        shutdown_signal().await;
        app.cluster.start_draining();
        let drain = app.config.hooks.drain;
        if !drain.is_zero() {
            tracing::info!(
                "draining: /healthz and /readyz answer 503 for {} ms, calls are still answered",
                drain.as_millis()
            );
            app.cluster.beat(&app.store).await;
            tokio::time::sleep(drain).await;
        }
        tracing::info!("shutting down: finishing requests in flight");
        self.stop().await;
        Ok(())
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Declares a group of endpoints once: the resources actix serves (each answering `405` with an
/// `Allow` header to other methods) and the `(method, path)` list the OpenAPI description is
/// tested against, so the two cannot drift apart.
macro_rules! endpoints {
    ($list:ident, $register:ident, $prefix:literal {
        $($path:literal => { $($method:ident => $handler:path),+ $(,)? }),* $(,)?
    }) => {
        /// Every endpoint of this group as (lower-case method, full path).
        pub const $list: &[(&str, &str)] = &[$($((stringify!($method), concat!($prefix, $path))),+),*];

        fn $register(cfg: &mut web::ServiceConfig) {
            $(
                cfg.service(
                    web::resource($path)
                        $(.route(web::$method().to($handler)))+
                        .default_service(web::to(|| async {
                            method_not_allowed(&[$(stringify!($method)),+])
                        })),
                );
            )*
        }
    };
}

endpoints!(ENDPOINTS, root, "" {
    "/" => { get => front_door },
    "/hooks/{ruleset}" => { get => hooks::hook, post => hooks::hook },
    "/healthz" => { get => health::healthz },
    "/readyz" => { get => health::readyz },
    "/metrics" => { get => health::metrics },
});

endpoints!(API_ENDPOINTS, api, "/api/v1" {
    "/openapi.json" => { get => api::openapi },
    "/rulesets" => { get => api::rulesets },
    "/rulesets/{name}" => { get => api::ruleset, put => changes::put },
    "/rulesets/{name}/release" => { post => api::release },
    "/rulesets/{name}/revisions" => { get => changes::revisions },
    "/rulesets/{name}/revisions/{hash}" => { get => changes::revision },
    "/rulesets/{name}/check" => { post => changes::check },
    "/rulesets/{name}/compare" => { post => changes::compare },
    "/rulesets/{name}/restore" => { post => changes::restore },
    "/audit" => { get => changes::audit_log },
    "/tokens" => { get => changes::tokens, post => changes::create_token },
    "/tokens/{name}" => { delete => changes::delete_token },
    "/plugins" => { get => api::plugins },
    "/plugins/{name}/invalidate" => { post => api::invalidate },
    "/calls" => { get => api::calls },
    "/calls/{uuid}" => { get => api::call },
    "/calls/{uuid}/agent" => { post => api::report_agent },
    "/subscriptions" => { get => subscriptions::list, post => subscriptions::create },
    "/subscriptions/{name}" => {
        get => subscriptions::get,
        patch => subscriptions::patch,
        delete => subscriptions::delete,
    },
    "/subscriptions/{name}/rotate-key" => { post => subscriptions::rotate_key },
    "/subscriptions/{name}/test" => { post => subscriptions::test },
    "/subscriptions/{name}/events" => { get => subscriptions::events },
    "/subscriptions/{name}/requeue" => { post => subscriptions::requeue },
    "/subscriptions/{name}/next" => { post => subscriptions::next },
    "/subscriptions/{name}/events/{id}" => { post => subscriptions::close },
});

fn method_not_allowed(methods: &[&str]) -> HttpResponse {
    let allow = methods
        .iter()
        .map(|m| m.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(", ");
    HttpResponse::MethodNotAllowed()
        .insert_header(("allow", allow.clone()))
        .content_type("text/plain; charset=utf-8")
        .body(format!("this endpoint takes {allow}\n"))
}

/// Every route belroute serves. Everything under `/api/v1` is behind [`auth::api_guard`].
fn routes(cfg: &mut web::ServiceConfig) {
    root(cfg);
    console::routes(cfg);
    cfg.service(
        web::scope("/api/v1")
            .wrap(from_fn(auth::api_guard))
            .app_data(json_bodies())
            .configure(api),
    );
}

/// API bodies are read as JSON whatever their content type says (curl's default form type
/// included), and an unreadable one gets a sentence saying what is wrong.
fn json_bodies() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(crate::changes::MAX_DRAFT_BODY)
        .content_type(|_| true)
        .content_type_required(false)
        .error_handler(|error, _req| {
            use actix_web::error::JsonPayloadError;
            let (status, message) = match &error {
                JsonPayloadError::OverflowKnownLength { limit, .. }
                | JsonPayloadError::Overflow { limit } => (
                    actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the JSON body is larger than {limit} bytes"),
                ),
                other => (
                    actix_web::http::StatusCode::BAD_REQUEST,
                    format!("the body must be a JSON object as docs/api.md shows: {other}"),
                ),
            };
            let response = HttpResponse::build(status)
                .content_type("text/plain; charset=utf-8")
                .body(format!("{message}\n"));
            actix_web::error::InternalError::from_response(error, response).into()
        })
}

/// `GET /`: where to go from here, instead of an empty 404.
async fn front_door() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(
            "belroute: call routing for Callvoip's Webhook-app.\n\
             Webhook: POST /hooks/{ruleset}   Health: /healthz /readyz /metrics\n\
             Console: /admin   API: /api/v1/openapi.json   Docs: docs/api.md in the repository\n",
        )
}

/// Binds and starts serving `app`, with `hooks.connections`' limits and timeouts.
pub async fn start(app: &Belroute, options: &ServerOptions) -> anyhow::Result<Running> {
    let state = web::Data::new(app.clone());
    // One set of console sessions for every worker.
    let sessions = web::Data::new(console::Sessions::new(app.storage.clone()));
    // One count of wrong credentials for every worker.
    let throttle = web::Data::new(throttle::Throttle::new(app.metrics.clone()));
    let settings = &app.config.hooks.connections;
    let files = limits::file_limit();
    let max_connections = limits::max_connections(settings, files);
    let workers = options.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    app.metrics
        .connections_max
        .set(gauge(max_connections as u64));
    app.metrics
        .file_limit
        .set(files.soft.map_or(i64::MAX, gauge));
    let open = app.metrics.connections_open.clone();
    let keep_alive = if settings.keep_alive.is_zero() {
        actix_web::http::KeepAlive::Disabled
    } else {
        actix_web::http::KeepAlive::Timeout(settings.keep_alive)
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(sessions.clone())
            .app_data(throttle.clone())
            .configure(routes)
    })
    .on_connect(move |_, data| {
        data.insert(limits::Open::new(&open));
    })
    .workers(workers)
    // actix-web counts per worker.
    .max_connections((max_connections / workers).max(1))
    .keep_alive(keep_alive)
    .client_request_timeout(settings.request_timeout)
    .client_disconnect_timeout(settings.disconnect_timeout)
    .disable_signals()
    .shutdown_timeout(options.shutdown_timeout.as_secs().max(1));
    let server = server
        .bind(&options.listen)
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let addrs = server.addrs();
    // No subscription may notify this server's own webhook.
    app.subscriptions.listening_on(&addrs);
    for (name, subscription) in &app.config.subscriptions {
        if let Some(endpoint) = &subscription.endpoint
            && let Some(why) = crate::subscriptions::points_at(endpoint.expose(), &addrs).await
        {
            anyhow::bail!("belroute.yaml: `subscriptions.{name}.endpoint` {why}");
        }
    }
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    for addr in &addrs {
        tracing::info!("listening on http://{addr}");
    }
    Ok(Running {
        addrs,
        handle,
        task,
    })
}
