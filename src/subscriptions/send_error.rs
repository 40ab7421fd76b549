//! Why a notification did not arrive, in words an operator can act on. reqwest's own message
//! is "error sending request" whatever happened; the cause is in its source chain.

use std::error::Error as _;
use std::io::ErrorKind;

/// One line for a failed send: what went wrong (connection refused, timeout, TLS, DNS, …)
/// and where, never the URL's path or query (they may hold a secret).
pub fn describe(e: &reqwest::Error) -> String {
    let place = e
        .url()
        .and_then(|url| {
            let host = url.host_str()?;
            Some(match url.port_or_known_default() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            })
        })
        .unwrap_or_else(|| "the endpoint".into());
    let causes = causes(e);
    let all = causes.join(": ");
    let lower = all.to_lowercase();
    if e.is_timeout() || io_kind(e) == Some(ErrorKind::TimedOut) {
        return if e.is_connect() {
            format!("timeout: cannot connect to {place} (no answer to the connection attempt)")
        } else {
            format!("timeout: {place} did not answer in time")
        };
    }
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        let host = e
            .url()
            .and_then(|u| u.host_str())
            .unwrap_or("the endpoint's host");
        return format!(
            "DNS: cannot resolve {host} ({})",
            innermost(&causes).unwrap_or("no address")
        );
    }
    match io_kind(e) {
        Some(ErrorKind::ConnectionRefused) => {
            return format!("connection refused by {place} (nothing listens there)");
        }
        Some(ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => {
            return format!("connection reset by {place}");
        }
        Some(ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable) => {
            return format!("cannot reach {place}: {}", innermost(&causes).unwrap_or(""));
        }
        _ => {}
    }
    if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("corrupt message")
    {
        return format!(
            "TLS handshake with {place} failed: {}",
            innermost(&causes).unwrap_or("no reason given")
        );
    }
    if e.is_redirect() {
        return format!("{place} answered with a redirect; notifications do not follow redirects");
    }
    if e.is_connect() {
        return format!(
            "cannot connect to {place}: {}",
            innermost(&causes).unwrap_or("no reason given")
        );
    }
    match innermost(&causes) {
        Some(cause) => format!("sending to {place} failed: {cause}"),
        None => format!("sending to {place} failed"),
    }
}

/// The messages of `e`'s causes, outermost first, without reqwest's own and without repeats.
fn causes(e: &reqwest::Error) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push(text);
        }
        source = cause.source();
    }
    out
}

fn innermost(causes: &[String]) -> Option<&str> {
    causes.last().map(String::as_str)
}

/// The kind of the first I/O error in `e`'s causes.
fn io_kind(e: &reqwest::Error) -> Option<ErrorKind> {
    let mut source = e.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Duration;

    use super::describe;

    /// The text for a POST to `url` that fails, with a client that waits `timeout`.
    async fn failure(url: &str, timeout: Duration) -> String {
        belroute_plugins::install_crypto_provider();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .build()
            .unwrap();
        let e = client.post(url).send().await.unwrap_err();
        describe(&e)
    }

    const SHORT: Duration = Duration::from_millis(500);

    #[tokio::test]
    async fn a_closed_port_is_connection_refused() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Bound, then dropped: nothing listens there now.
        let text = failure(&format!("http://127.0.0.1:{port}/notify?key=s3cret"), SHORT).await;
        assert_eq!(
            text,
            format!("connection refused by 127.0.0.1:{port} (nothing listens there)")
        );
    }

    #[tokio::test]
    async fn an_endpoint_that_never_answers_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts, reads, never answers.
        let held = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            std::thread::sleep(Duration::from_millis(1500));
        });
        let text = failure(&format!("http://127.0.0.1:{port}/notify"), SHORT).await;
        assert_eq!(
            text,
            format!("timeout: 127.0.0.1:{port} did not answer in time")
        );
        held.join().unwrap();
    }

    #[tokio::test]
    async fn https_to_a_plain_http_server_is_a_tls_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        });
        let text = failure(&format!("https://127.0.0.1:{port}/notify"), SHORT).await;
        assert!(
            text.starts_with(&format!("TLS handshake with 127.0.0.1:{port} failed: ")),
            "{text}"
        );
        served.join().unwrap();
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_a_dns_error() {
        // `.invalid` never resolves (RFC 6761), with or without a network.
        // A generous timeout: a slow resolver must not turn this into a timeout.
        let text = failure(
            "http://crm.belroute-test.invalid/notify",
            Duration::from_secs(20),
        )
        .await;
        assert!(
            text.starts_with("DNS: cannot resolve crm.belroute-test.invalid ("),
            "{text}"
        );
        assert!(!text.contains("/notify"), "no path: {text}");
    }
}
