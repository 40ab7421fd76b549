//! The ceiling for the end-to-end benchmark (`bench/e2e.py`): what actix-web itself costs for a
//! Callvoip webhook call, so belroute's figures can be read as a share of it.
//!
//! One route, `POST /hooks/{ruleset}`, reads the body, parses it as JSON into a map (as belroute
//! does before routing) and answers a constant route as `text/plain`. Nothing else: no rules, no
//! lookups, no call log, no logging. One worker thread, as belroute is run in the benchmark.
//!
//! Usage: `belroute-bench-ceiling [ADDRESS]` (default `127.0.0.1:18081`).

use actix_web::http::header::ContentType;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Map, Value};

/// The route answered; the benchmark's check expects exactly this.
const ROUTE: &str = "finance";

/// belroute's default `hooks.max_body`.
const MAX_BODY: usize = 64 * 1024;

async fn hook(body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<Map<String, Value>>(&body) {
        Ok(call) => HttpResponse::Ok()
            .content_type(ContentType::plaintext())
            // The map is used, so the parse cannot be optimised away.
            .insert_header(("x-fields", call.len()))
            .body(ROUTE),
        Err(e) => HttpResponse::BadRequest()
            .content_type(ContentType::plaintext())
            .body(format!("the body is not a JSON object: {e}")),
    }
}

fn routes(config: &mut web::ServiceConfig) {
    config
        .app_data(web::PayloadConfig::new(MAX_BODY))
        .route("/hooks/{ruleset}", web::post().to(hook));
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".into());
    HttpServer::new(|| App::new().configure(routes))
        .workers(1)
        .bind(&listen)?
        .run()
        .await
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::CONTENT_TYPE;
    use actix_web::{App, test};

    use super::routes;

    fn fixture(name: &str) -> Vec<u8> {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/callvoip/"
        );
        std::fs::read(format!("{dir}{name}")).unwrap()
    }

    #[actix_web::test]
    async fn answers_the_callvoip_example_with_the_constant_route() {
        let app = test::init_service(App::new().configure(routes)).await;
        let request = test::TestRequest::post()
            .uri("/hooks/main")
            .insert_header((CONTENT_TYPE, "application/json"))
            .set_payload(fixture("post-example.json"))
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers().get(CONTENT_TYPE).unwrap(),
            "text/plain; charset=utf-8"
        );
        assert_eq!(response.headers().get("x-fields").unwrap(), "12");
        assert_eq!(test::read_body(response).await, "finance");
    }

    #[actix_web::test]
    async fn parses_the_body_it_refuses_the_example_as_printed() {
        let app = test::init_service(App::new().configure(routes)).await;
        let request = test::TestRequest::post()
            .uri("/hooks/main")
            .set_payload(fixture("post-example-as-printed-in-docs.txt"))
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), 400);
    }
}
