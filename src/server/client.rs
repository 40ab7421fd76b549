//! Who the client is: its address, read through trusted proxies. Authentication and the
//! throttle both ask this.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The client's address: the peer, or, behind a trusted proxy, the nearest address in
/// `X-Forwarded-For` that is not itself a trusted proxy. Fails closed (`None`): an entry that
/// cannot be read where the client's address should be means the client is unknown, not that
/// the next entry (which the client may have written itself) is believed.
pub fn client_ip(req: &HttpRequest, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    client_behind(peer, &forwarded, trusted_proxies)
}

fn client_behind(peer: IpAddr, forwarded: &[&str], trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    for entry in forwarded.iter().rev() {
        let ip = forwarded_ip(entry)?;
        if !trusted(&ip) {
            return Some(ip);
        }
    }
    // Only trusted proxies (or no header): the nearest proxy is the client.
    Some(peer)
}

/// One `X-Forwarded-For` entry: `203.0.113.9`, `203.0.113.9:51234`, `2001:db8::9`,
/// `[2001:db8::9]` or `[2001:db8::9]:443`.
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return ip.parse().ok();
    }
    let (ip, port) = entry.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_entries_with_ports_and_brackets() {
        for (entry, ip) in [
            ("203.0.113.9", "203.0.113.9"),
            (" 203.0.113.9:51234", "203.0.113.9"),
            ("2001:db8::9", "2001:db8::9"),
            ("[2001:db8::9]", "2001:db8::9"),
            ("[2001:db8::9]:443", "2001:db8::9"),
        ] {
            assert_eq!(forwarded_ip(entry), Some(ip.parse().unwrap()), "{entry}");
        }
        for entry in [
            "unknown",
            "",
            "_hidden",
            "203.0.113.9:port",
            "[2001:db8::9",
            "1.2.3.4:123456",
        ] {
            assert_eq!(forwarded_ip(entry), None, "{entry}");
        }
    }

    #[test]
    fn an_unreadable_forwarded_entry_fails_closed() {
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let trusted: Vec<IpNet> = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        let client = |entries: &[&str]| client_behind(proxy, entries, &trusted);
        assert_eq!(
            client(&["185.103.76.10", "10.1.2.3"]),
            Some("185.103.76.10".parse().unwrap())
        );
        assert_eq!(
            client(&["185.103.76.10:5060"]),
            Some("185.103.76.10".parse().unwrap())
        );
        // The client forged the first entry; the nearest one is unreadable: nobody is believed.
        assert_eq!(client(&["185.103.76.10", "unknown"]), None);
        assert_eq!(client(&["185.103.76.10", "[2001:db8::9"]), None);
        // No header, or only proxies: the proxy itself.
        assert_eq!(client(&[]), Some(proxy));
        assert_eq!(client(&["10.0.0.1"]), Some(proxy));
    }
}
