//! A fake helpdesk CRM: a real HTTP server on loopback that answers fast, slowly, never, with
//! errors or garbage, and counts what it was asked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub enum Mode {
    /// Answer at once.
    Answer,
    /// Answer after this long.
    Slow(Duration),
    /// Never answer.
    Never,
    /// Answer with this status and no useful body.
    Status(u16),
    /// Answer 200 with a body that is not JSON.
    Malformed,
}

#[derive(Debug)]
struct CrmState {
    mode: Mutex<Mode>,
    requests: AtomicUsize,
    /// Open tickets by phone number (E.164).
    tickets: Mutex<HashMap<String, Value>>,
    queries: Mutex<Vec<String>>,
}

pub struct FakeCrm {
    pub base: String,
    state: Arc<CrmState>,
    handle: ServerHandle,
}

impl FakeCrm {
    pub async fn start() -> Self {
        let state = Arc::new(CrmState {
            mode: Mutex::new(Mode::Answer),
            requests: AtomicUsize::new(0),
            tickets: Mutex::new(HashMap::new()),
            queries: Mutex::new(Vec::new()),
        });
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/api/v1/tickets/search", web::get().to(search))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .bind("127.0.0.1:0")
        .unwrap();
        let base = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        FakeCrm {
            base,
            state,
            handle,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn queries(&self) -> Vec<String> {
        self.state.queries.lock().unwrap().clone()
    }

    /// An open ticket for `phone` (E.164) handled by the agent on `extension`.
    pub fn add_ticket(&self, phone: &str, extension: &str) {
        let ticket = json!({ "id": 4711, "title": "Printer on fire", "state": "open", "owner": { "name": "Anna", "extension": extension } });
        self.state
            .tickets
            .lock()
            .unwrap()
            .entry(phone.to_string())
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .unwrap()
            .push(ticket);
    }

    pub fn clear_tickets(&self) {
        self.state.tickets.lock().unwrap().clear();
    }

    /// The `plugins:` entry for this CRM, Zammad-style: search open tickets by phone.
    pub fn plugin_config(&self, name: &str, extra: &str) -> String {
        format!(
            "  {name}:\n    kind: http\n    url: \"{}/api/v1/tickets/search?query=phone:{{caller_e164}}&state=open\"\n    headers: {{ Authorization: \"Token token=test\" }}\n    facts: {{ open: \"/\", count: \"/length\", agent: \"/0/owner/extension\" }}\n{extra}",
            self.base
        )
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

async fn search(req: HttpRequest, state: web::Data<CrmState>) -> HttpResponse {
    state.requests.fetch_add(1, Ordering::SeqCst);
    state
        .queries
        .lock()
        .unwrap()
        .push(req.query_string().to_string());
    let mode = state.mode.lock().unwrap().clone();
    match mode {
        Mode::Answer => {}
        Mode::Slow(d) => tokio::time::sleep(d).await,
        Mode::Never => tokio::time::sleep(Duration::from_secs(3600)).await,
        Mode::Status(code) => {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap())
                .body("nope");
        }
        Mode::Malformed => {
            return HttpResponse::Ok()
                .content_type("application/json")
                .body("{\"tickets\": [oops");
        }
    }
    if req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        != Some("Token token=test")
    {
        return HttpResponse::Unauthorized().finish();
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let phone = pairs
        .iter()
        .find(|(k, _)| k == "query")
        .and_then(|(_, v)| v.strip_prefix("phone:"))
        .unwrap_or_default();
    let tickets = state
        .tickets
        .lock()
        .unwrap()
        .get(phone)
        .cloned()
        .unwrap_or_else(|| json!([]));
    HttpResponse::Ok().json(tickets)
}
