//! A subscribing application on loopback: records belroute's notifications (and their
//! headers) and, when told to, pulls its events with GetNextNewAndClaim and closes each.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;

#[derive(Default)]
struct Inbox {
    /// Headers of every notification taken, as (name, value) lists.
    notifications: Mutex<Vec<Vec<(String, String)>>>,
    bodies: Mutex<Vec<usize>>,
    refused: AtomicUsize,
    /// Answer notifications with 503.
    down: AtomicBool,
    /// Pull after each notification.
    pull: AtomicBool,
    /// (belroute base URL, subscription, API key) once known.
    belroute: Mutex<Option<(String, String, String)>>,
    events: Mutex<Vec<Value>>,
}

pub struct Receiver {
    pub url: String,
    inbox: Arc<Inbox>,
    handle: ServerHandle,
}

impl Receiver {
    pub async fn start() -> Self {
        let inbox = Arc::new(Inbox::default());
        let data = web::Data::from(inbox.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/notify", web::post().to(notified))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .bind("127.0.0.1:0")
        .unwrap();
        let url = format!("http://{}/notify", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver { url, inbox, handle }
    }

    /// Pull events after each notification, from this belroute.
    pub fn pull_from(&self, base: &str, subscription: &str, api_key: &str) {
        *self.inbox.belroute.lock().unwrap() = Some((
            base.to_string(),
            subscription.to_string(),
            api_key.to_string(),
        ));
        self.inbox.pull.store(true, Ordering::SeqCst);
    }

    pub fn set_down(&self, down: bool) {
        self.inbox.down.store(down, Ordering::SeqCst);
    }

    pub fn notifications(&self) -> Vec<Vec<(String, String)>> {
        self.inbox.notifications.lock().unwrap().clone()
    }

    pub fn body_lengths(&self) -> Vec<usize> {
        self.inbox.bodies.lock().unwrap().clone()
    }

    pub fn refused(&self) -> usize {
        self.inbox.refused.load(Ordering::SeqCst)
    }

    pub fn events(&self) -> Vec<Value> {
        self.inbox.events.lock().unwrap().clone()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

async fn notified(req: HttpRequest, body: web::Bytes, inbox: web::Data<Inbox>) -> HttpResponse {
    if inbox.down.load(Ordering::SeqCst) {
        inbox.refused.fetch_add(1, Ordering::SeqCst);
        return HttpResponse::ServiceUnavailable().finish();
    }
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    inbox.notifications.lock().unwrap().push(headers);
    inbox.bodies.lock().unwrap().push(body.len());
    if inbox.pull.load(Ordering::SeqCst) {
        let target = inbox.belroute.lock().unwrap().clone();
        if let Some((base, subscription, key)) = target {
            let inbox = inbox.into_inner();
            tokio::spawn(async move {
                let events = drain(&base, &subscription, &key).await;
                inbox.events.lock().unwrap().extend(events);
            });
        }
    }
    HttpResponse::Accepted().finish()
}

/// GetNextNewAndClaim until 204, closing each event with success; returns the events.
pub async fn drain(base: &str, subscription: &str, key: &str) -> Vec<Value> {
    belroute_plugins::install_crypto_provider();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut events = Vec::new();
    loop {
        let response = client
            .post(format!("{base}/api/v1/subscriptions/{subscription}/next"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        if response.status() == 204 {
            return events;
        }
        assert_eq!(response.status(), 200);
        let event: Value = response.json().await.unwrap();
        let closed = client
            .post(format!(
                "{base}/api/v1/subscriptions/{subscription}/events/{}",
                event["id"]
            ))
            .bearer_auth(key)
            .json(&serde_json::json!({ "status": "success", "claim": event["claim"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(closed.status(), 204);
        events.push(event);
    }
}
