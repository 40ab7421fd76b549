//! Who may call what: `/hooks/*` by a secret header, a secret query parameter or an IP
//! allowlist; `/api/v1/*` by the admin token, except the two subscriber endpoints, which take
//! the subscription's API key. The API guard runs before routing and before any body is read,
//! and anything it does not know is admin-only: a new endpoint cannot be forgotten open.

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use belroute_engine::text::escape;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::throttle::{self, Kind, Throttle};
use crate::access::{Permission, Principal};
use crate::app::Belroute;
use crate::config::Auth;
use crate::subscriptions::Subscription;

/// Who may call an `/api/v1` endpoint.
#[derive(Debug, PartialEq, Eq)]
enum Access<'p> {
    /// The OpenAPI description: no secrets in it.
    Public,
    /// A token whose role may do this.
    Token(Permission),
    /// The subscription named in the path, with its API key.
    Subscriber(&'p str),
}

/// What each endpoint needs: the subscriber endpoints (GetNextNewAndClaim and closing a claim)
/// a subscription's API key; reading a token that may read; changing rule sets one that may
/// change them; reporting an agent one that may report; everything else, and anything new,
/// an admin's.
fn access<'p>(method: &Method, path: &'p str) -> Access<'p> {
    if path == "/api/v1/openapi.json" {
        return Access::Public;
    }
    let Some(tail) = path.strip_prefix("/api/v1/") else {
        return Access::Token(Permission::Administer);
    };
    let parts: Vec<&str> = tail.split('/').collect();
    let need = match (method, parts.as_slice()) {
        (&Method::POST, ["subscriptions", name, "next"] | ["subscriptions", name, "events", _]) => {
            return Access::Subscriber(name);
        }
        (_, ["tokens", ..]) => Permission::Administer,
        // Events carry the call's data, numbers unmasked: for the admin (and the subscriber).
        (&Method::GET, ["subscriptions", _, "events"]) => Permission::Administer,
        (
            &Method::GET,
            [
                "rulesets" | "calls" | "plugins" | "subscriptions" | "audit",
                ..,
            ],
        ) => Permission::Read,
        (&Method::POST, ["calls", _, "agent"]) => Permission::ReportAgent,
        (&Method::PUT, ["rulesets", _])
        | (&Method::POST, ["rulesets", _, "check" | "compare" | "restore" | "release"])
        | (&Method::POST, ["plugins", _, "invalidate"]) => Permission::ChangeRules,
        _ => Permission::Administer,
    };
    Access::Token(need)
}

/// The `/api/v1` guard (`middleware::from_fn`): checks the credential the endpoint needs and
/// hands the handler who it is: the token's [`Principal`], or a subscriber's [`Subscription`],
/// in the request's extensions.
pub async fn api_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let (Some(app), Some(throttle)) = (
        req.app_data::<web::Data<Belroute>>().cloned(),
        req.app_data::<web::Data<Throttle>>().cloned(),
    ) else {
        let response = HttpResponse::InternalServerError().finish();
        return Ok(req.into_response(response).map_into_right_body());
    };
    let refusal = match access(req.method(), req.path()) {
        Access::Public => None,
        Access::Token(need) => match principal(req.request(), &app, &throttle, need) {
            Ok(who) => {
                req.extensions_mut().insert(who);
                None
            }
            Err(response) => Some(*response),
        },
        Access::Subscriber(name) => match subscriber(req.request(), &app, &throttle, name) {
            Ok(subscription) => {
                req.extensions_mut().insert(subscription);
                None
            }
            Err(None) => Some(unauthorized()),
            Err(Some(wait)) => Some(too_many_tries(wait)),
        },
    };
    match refusal {
        Some(response) => Ok(req.into_response(response).map_into_right_body()),
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
    }
}

/// Who the request's bearer token is, if it may do `need`; else the response to send: `403`
/// when the admin API is off or the token's role may not, `401` for no or a wrong token,
/// `429` when this address must wait after too many wrong ones.
fn principal(
    req: &HttpRequest,
    app: &Belroute,
    throttle: &Throttle,
    need: Permission,
) -> Result<Principal, Box<HttpResponse>> {
    let Some(bootstrap) = &app.config.admin.token else {
        return Err(Box::new(HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body("the admin API is off: set admin.token in belroute.yaml and restart belroute (belroute.yaml and the ${VARIABLES} it names are read at start)\n")));
    };
    let given = bearer(req);
    if given.is_empty() {
        // Nothing was guessed: not counted.
        tracing::warn!(path = %escape(req.path()), "admin API: no bearer token");
        return Err(Box::new(unauthorized()));
    }
    let client = throttle.client(req, &app.config.hooks.auth.trusted_proxies);
    let ticket = throttle
        .check(Kind::AdminApi, client)
        .map_err(|wait| Box::new(too_many_tries(wait)))?;
    let Some(who) = app.tokens.principal(given, Some(bootstrap)) else {
        if ticket.failed() {
            tracing::warn!(path = %escape(req.path()), "admin API: unknown bearer token");
        }
        return Err(Box::new(unauthorized()));
    };
    ticket.succeeded();
    if !who.may(need) {
        tracing::warn!(path = %escape(req.path()), token = %escape(&who.name), role = who.role.as_str(), "admin API: the token's role may not do this");
        return Err(Box::new(HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "token `{}` has role {}, which may not {} {}; ask an admin for a token with a role that may (docs/api.md, \"Tokens and roles\")\n",
                escape(&who.name),
                who.role.as_str(),
                req.method(),
                escape(req.path())
            ))));
    }
    Ok(who)
}

/// The subscription named `name`, if the request carries its API key; else `Err`, with how
/// long this address must wait when it has had too many wrong keys.
fn subscriber(
    req: &HttpRequest,
    app: &Belroute,
    throttle: &Throttle,
    name: &str,
) -> Result<Arc<Subscription>, Option<std::time::Duration>> {
    let given = bearer(req);
    if given.is_empty() {
        tracing::warn!(subscription = %escape(name), "subscription API: no API key");
        return Err(None);
    }
    let client = throttle.client(req, &app.config.hooks.auth.trusted_proxies);
    let ticket = throttle
        .check(Kind::SubscriptionKey, client)
        .map_err(Some)?;
    // Unknown subscription and wrong key answer alike: nothing to learn by guessing names.
    let now = crate::time::now_ms();
    match app.subscriptions.get(name) {
        Some(s) if s.accepts(given, now) => {
            ticket.succeeded();
            Ok(s)
        }
        _ => {
            if ticket.failed() {
                tracing::warn!(subscription = %escape(name), "subscription API: unknown subscription or wrong API key");
            }
            Err(None)
        }
    }
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header(("www-authenticate", "Bearer"))
        .finish()
}

/// `429` with `Retry-After`: this address presented too many wrong credentials; the one it
/// sent now was not checked.
pub(super) fn too_many_tries(wait: std::time::Duration) -> HttpResponse {
    let seconds = throttle::retry_after(wait);
    HttpResponse::TooManyRequests()
        .insert_header(("retry-after", seconds.clone()))
        .content_type("text/plain; charset=utf-8")
        .body(format!(
            "too many wrong credentials from this address; try again in {seconds}s\n"
        ))
}

/// Why a request was turned away. Logged, never sent: the response body says nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// 403: the client address is not allowed.
    Forbidden(String),
    /// 401: a secret is missing.
    Unauthorized(String),
    /// 401: a secret is wrong (a guess: counted by the throttle).
    WrongSecret(String),
}

/// Compares secrets in constant time; hashing first hides their length too.
pub fn same_secret(given: &[u8], expected: &str) -> bool {
    let given = Sha256::digest(given);
    let expected = Sha256::digest(expected.as_bytes());
    given.ct_eq(&expected).into()
}

/// The token of an `Authorization: Bearer …` header (the scheme in any case, RFC 7235);
/// empty when there is none.
pub fn bearer(req: &HttpRequest) -> &str {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim_start().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .unwrap_or_default()
}

/// Checks every configured condition of `auth`.
pub fn check(auth: &Auth, req: &HttpRequest) -> Result<(), Denied> {
    if !auth.allow_ips.is_empty() {
        let ip = super::client::client_ip(req, &auth.trusted_proxies);
        if !ip.is_some_and(|ip| auth.allow_ips.iter().any(|net| net.contains(&ip))) {
            return Err(Denied::Forbidden(format!(
                "client {} is not in hooks.auth.allow_ips",
                ip.map(|ip| ip.to_string())
                    .unwrap_or_else(|| "(unknown)".into())
            )));
        }
    }
    if let Some(header) = &auth.header {
        match req.headers().get(header.name.as_str()) {
            None => {
                return Err(Denied::Unauthorized(format!(
                    "header `{}` missing",
                    header.name
                )));
            }
            Some(value) if !same_secret(value.as_bytes(), header.value.expose()) => {
                return Err(Denied::WrongSecret(format!(
                    "header `{}` has the wrong value",
                    header.name
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(query) = &auth.query {
        let given = query_value(req.query_string(), &query.name);
        match given {
            None => {
                return Err(Denied::Unauthorized(format!(
                    "query parameter `{}` missing",
                    query.name
                )));
            }
            Some(value) if !same_secret(value.as_bytes(), query.value.expose()) => {
                return Err(Denied::WrongSecret(format!(
                    "query parameter `{}` has the wrong value",
                    query.name
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Whether the request carries any of the secrets `auth` asks for (right or wrong).
pub fn presents_secret(auth: &Auth, req: &HttpRequest) -> bool {
    auth.header
        .as_ref()
        .is_some_and(|h| req.headers().contains_key(h.name.as_str()))
        || auth
            .query
            .as_ref()
            .is_some_and(|q| query_value(req.query_string(), &q.name).is_some())
}

fn query_value(query: &str, name: &str) -> Option<String> {
    url_pairs(query).find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Decoded `k=v` pairs of a query string or form body.
pub fn url_pairs(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    serde_urlencoded::from_str::<Vec<(String, String)>>(text)
        .unwrap_or_default()
        .into_iter()
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_endpoint_needs_what_its_callers_have() {
        use super::{Access, access};
        use crate::access::Permission::*;
        use actix_web::http::Method;
        let cases = [
            (
                Method::POST,
                "/api/v1/subscriptions/crm/next",
                Access::Subscriber("crm"),
            ),
            (
                Method::POST,
                "/api/v1/subscriptions/crm/events/7",
                Access::Subscriber("crm"),
            ),
            (
                Method::GET,
                "/api/v1/subscriptions/crm/events",
                Access::Token(Administer),
            ),
            (
                Method::GET,
                "/api/v1/subscriptions/crm/next",
                Access::Token(Read),
            ),
            (
                Method::POST,
                "/api/v1/subscriptions/crm/events/7/x",
                Access::Token(Administer),
            ),
            (
                Method::POST,
                "/api/v1/subscriptions//next/x",
                Access::Token(Administer),
            ),
            (
                Method::POST,
                "/api/v1/subscriptions",
                Access::Token(Administer),
            ),
            (Method::GET, "/api/v1/subscriptions", Access::Token(Read)),
            (
                Method::POST,
                "/api/v1/calls/u/agent",
                Access::Token(ReportAgent),
            ),
            (Method::GET, "/api/v1/calls", Access::Token(Read)),
            (
                Method::PUT,
                "/api/v1/rulesets/main",
                Access::Token(ChangeRules),
            ),
            (
                Method::POST,
                "/api/v1/rulesets/main/check",
                Access::Token(ChangeRules),
            ),
            (
                Method::POST,
                "/api/v1/rulesets/main/restore",
                Access::Token(ChangeRules),
            ),
            (
                Method::GET,
                "/api/v1/rulesets/main/revisions",
                Access::Token(Read),
            ),
            (
                Method::POST,
                "/api/v1/plugins/crm/invalidate",
                Access::Token(ChangeRules),
            ),
            (Method::GET, "/api/v1/audit", Access::Token(Read)),
            (Method::GET, "/api/v1/tokens", Access::Token(Administer)),
            (Method::POST, "/api/v1/tokens", Access::Token(Administer)),
            (
                Method::DELETE,
                "/api/v1/tokens/anna",
                Access::Token(Administer),
            ),
            (
                Method::GET,
                "/api/v1/anything-new",
                Access::Token(Administer),
            ),
            (
                Method::POST,
                "/api/v1/anything-new",
                Access::Token(Administer),
            ),
            (Method::GET, "/api/v1/openapi.json", Access::Public),
            (
                Method::GET,
                "/api/v1/openapi.json/x",
                Access::Token(Administer),
            ),
        ];
        for (method, path, expected) in cases {
            assert_eq!(access(&method, path), expected, "{method} {path}");
        }
    }

    use super::*;

    #[test]
    fn secrets_compare_by_content() {
        assert!(same_secret(b"s3cret", "s3cret"));
        assert!(!same_secret(b"s3cre", "s3cret"));
        assert!(!same_secret(b"", "s3cret"));
    }
}
