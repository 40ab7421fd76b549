//! Who may call `/hooks/*`: a secret header, a secret query parameter, an IP allowlist.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Auth;

/// Why a request was turned away. Logged, never sent: the response body says nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// 403: the client address is not allowed.
    Forbidden(String),
    /// 401: a secret is missing or wrong.
    Unauthorized(String),
}

/// Compares secrets in constant time; hashing first hides their length too.
pub(super) fn same_secret(given: &[u8], expected: &str) -> bool {
    let given = Sha256::digest(given);
    let expected = Sha256::digest(expected.as_bytes());
    given.ct_eq(&expected).into()
}

/// The token of an `Authorization: Bearer …` header; empty when there is none.
pub fn bearer(req: &HttpRequest) -> &str {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
}

/// The client's address: the peer, or, behind a trusted proxy, the nearest address in
/// `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(req: &HttpRequest, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted(ip))
            .unwrap_or(peer),
    )
}

/// Checks every configured condition of `auth`.
pub fn check(auth: &Auth, req: &HttpRequest) -> Result<(), Denied> {
    if !auth.allow_ips.is_empty() {
        let ip = client_ip(req, &auth.trusted_proxies);
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
                return Err(Denied::Unauthorized(format!(
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
                return Err(Denied::Unauthorized(format!(
                    "query parameter `{}` has the wrong value",
                    query.name
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
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
    use super::*;

    #[test]
    fn secrets_compare_by_content() {
        assert!(same_secret(b"s3cret", "s3cret"));
        assert!(!same_secret(b"s3cre", "s3cret"));
        assert!(!same_secret(b"", "s3cret"));
    }
}
