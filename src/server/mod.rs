//! The HTTP server: thin handlers that parse, call one method of [`Belroute`] and answer;
//! authentication sits in front of them ([`auth`]).

mod api;
mod auth;
mod health;
mod hooks;
mod subscriptions;

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

    /// Runs until SIGTERM or SIGINT, then stops gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        shutdown_signal().await;
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

/// The routes, for the server and for tests that build an app in-process.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/hooks/{ruleset}")
            .route(web::post().to(hooks::hook))
            .route(web::get().to(hooks::hook))
            .default_service(web::to(|| async {
                HttpResponse::MethodNotAllowed()
                    .insert_header(("allow", "GET, POST"))
                    .body("use POST (JSON call data) or GET (query parameters)\n")
            })),
    )
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(health::metrics))
    .service(
        // Every endpoint in here is behind the guard: admin-only unless it says otherwise.
        web::scope("/api/v1")
            .wrap(from_fn(auth::api_guard))
            .route("/rulesets", web::get().to(api::rulesets))
            .route("/plugins", web::get().to(api::plugins))
            .route(
                "/plugins/{name}/invalidate",
                web::post().to(api::invalidate),
            )
            .route("/calls", web::get().to(api::calls))
            .route("/calls/{uuid}", web::get().to(api::call))
            .route("/calls/{uuid}/agent", web::post().to(api::report_agent))
            .route("/subscriptions", web::get().to(subscriptions::list))
            .route(
                "/subscriptions/{name}/events",
                web::get().to(subscriptions::events),
            )
            .route(
                "/subscriptions/{name}/next",
                web::post().to(subscriptions::next),
            )
            .route(
                "/subscriptions/{name}/events/{id}",
                web::post().to(subscriptions::close),
            ),
    );
}

/// Binds and starts serving `app`.
pub async fn start(app: &Belroute, options: &ServerOptions) -> anyhow::Result<Running> {
    let state = web::Data::new(app.clone());
    let mut server = HttpServer::new(move || App::new().app_data(state.clone()).configure(routes))
        .disable_signals()
        .shutdown_timeout(options.shutdown_timeout.as_secs().max(1));
    if let Some(workers) = options.workers {
        server = server.workers(workers);
    }
    let server = server
        .bind(&options.listen)
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let addrs = server.addrs();
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
