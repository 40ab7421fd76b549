//! The OpenAPI description and the routes belroute really serves, in step.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::collections::BTreeSet;

use common::{TestServer, answering};

fn described() -> BTreeSet<(String, String)> {
    let spec: serde_json::Value =
        serde_json::from_str(include_str!("../docs/openapi.json")).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let mut out = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if method != "parameters" {
                out.insert((method.clone(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn every_route_is_described_and_every_description_is_a_route() {
    let served: BTreeSet<(String, String)> = belroute::server::ENDPOINTS
        .iter()
        .chain(belroute::server::API_ENDPOINTS)
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let described = described();
    let undescribed: Vec<_> = served.difference(&described).collect();
    let unserved: Vec<_> = described.difference(&served).collect();
    assert!(
        undescribed.is_empty(),
        "routes missing from docs/openapi.json: {undescribed:?}"
    );
    assert!(
        unserved.is_empty(),
        "docs/openapi.json describes routes that are not served: {unserved:?}"
    );
}

/// The list the test above reads is the list actix serves: each path answers its methods
/// (not the router's 404) and `405` with `Allow` to another.
#[tokio::test]
async fn the_listed_routes_are_the_served_ones() {
    let server = TestServer::with_config(
        &[("main.yaml", &answering("x"))],
        "admin:\n  token: t0ken\n",
    )
    .await;
    let all: Vec<_> = belroute::server::ENDPOINTS
        .iter()
        .chain(belroute::server::API_ENDPOINTS)
        .collect();
    for (method, path) in &all {
        let url = server.url(
            &path
                .replace("{ruleset}", "main")
                .replace("{name}", "n")
                .replace("{uuid}", "u")
                .replace("{id}", "1")
                .replace("{hash}", "h"),
        );
        let wrong = if *method == "get" { "DELETE" } else { "GET" };
        let siblings: Vec<String> = all
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m.to_ascii_uppercase())
            .collect();
        let response = server
            .client
            .request(wrong.parse().unwrap(), &url)
            .bearer_auth("t0ken")
            .send()
            .await
            .unwrap();
        if siblings.contains(&wrong.to_string()) {
            continue;
        }
        assert_eq!(response.status(), 405, "{wrong} {path}");
        assert_eq!(
            response.headers()["allow"].to_str().unwrap(),
            siblings.join(", "),
            "{path}"
        );
    }
    // Served without a token, and the same as the file.
    let served = server
        .client
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.text().await.unwrap(),
        include_str!("../docs/openapi.json")
    );
    server.stop().await;
}
