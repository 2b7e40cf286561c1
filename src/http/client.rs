//! Who the client is: the effective client address and whether it used TLS, from the TCP peer
//! and, only when that peer is a trusted proxy (`--trusted-proxies`), the `Forwarded`
//! (RFC 7239) or `X-Forwarded-For` chain.
//!
//! The chain is read from the right: each proxy appends the address it saw, so the rightmost
//! entries were written by our own proxies and the first address (from the right) that is not
//! a trusted proxy is the client. Everything left of it was written by the client itself and
//! is never believed. A hop that is not an address (`unknown`, an obfuscated `_name`) makes
//! the client unknown, which no `allowedNetworks` contains. Pure functions over header values:
//! the handler passes them in.

use std::net::{IpAddr, SocketAddr};

use crate::cidr::{self, Cidr};

/// The client as the decision and the audit trail see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The effective client address; `None` when a trusted proxy sent a hop that is not one.
    pub ip: Option<IpAddr>,
    /// What the audit trail records as `caller.address`: the peer's `ip:port` when it is the
    /// client, the forwarded address otherwise (or the peer when the chain was unusable).
    pub address: Option<String>,
    /// Whether the client's request came over TLS (ours, or a trusted proxy's per
    /// `Forwarded: proto=https` / `X-Forwarded-Proto: https`).
    pub tls: bool,
}

/// Most hops of a forwarded chain looked at; longer chains are cut from the left (the part a
/// client could have written).
const MAX_HOPS: usize = 32;

/// Resolves the client. `forwarded` and `x_forwarded_for` are every value of those headers in
/// order; `x_forwarded_proto` the last `X-Forwarded-Proto`; `secure` whether our listener
/// speaks TLS.
pub fn resolve(
    peer: Option<SocketAddr>,
    trusted: &[Cidr],
    forwarded: &[&str],
    x_forwarded_for: &[&str],
    x_forwarded_proto: Option<&str>,
    secure: bool,
) -> Client {
    let peer_ip = peer.map(|p| cidr::canonical(p.ip()));
    let direct = Client {
        ip: peer_ip,
        address: peer.map(|p| p.to_string()),
        tls: secure,
    };
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains_ip(ip));
    let Some(peer_ip) = peer_ip.filter(|ip| is_trusted(*ip)) else {
        return direct;
    };
    let (hops, proto) = if !forwarded.is_empty() {
        parse_forwarded(forwarded)
    } else if !x_forwarded_for.is_empty() {
        let hops = x_forwarded_for
            .iter()
            .flat_map(|v| v.split(','))
            .map(|h| node_ip(h.trim()))
            .collect();
        (hops, x_forwarded_proto.map(str::to_ascii_lowercase))
    } else {
        return direct;
    };
    let tls = secure && proto.as_deref().is_none_or(|p| p == "https")
        || proto.as_deref() == Some("https");
    let mut client = Some(peer_ip);
    for hop in hops.iter().rev().take(MAX_HOPS) {
        match hop {
            Some(ip) if is_trusted(*ip) => client = Some(*ip),
            Some(ip) => {
                client = Some(*ip);
                break;
            }
            None => {
                client = None;
                break;
            }
        }
    }
    Client {
        ip: client,
        address: client.map_or(direct.address, |ip| Some(ip.to_string())),
        tls,
    }
}

/// The `for=` nodes of every `Forwarded` element, left to right, and the `proto=` of the last
/// element (the one our proxy wrote).
fn parse_forwarded(values: &[&str]) -> (Vec<Option<IpAddr>>, Option<String>) {
    let mut hops = Vec::new();
    let mut proto = None;
    for element in values.iter().flat_map(|v| v.split(',')) {
        let mut node = None;
        let mut element_proto = None;
        for pair in element.split(';') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "for" => node = Some(node_ip(value)),
                "proto" => element_proto = Some(value.to_ascii_lowercase()),
                _ => {}
            }
        }
        // An element without `for=` still is a hop, whose address nobody told us.
        hops.push(node.unwrap_or(None));
        proto = element_proto;
    }
    (hops, proto)
}

/// The address of one hop: `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]`, `[2001:db8::1]:80` or a
/// bare IPv6 address; `None` for anything else.
fn node_ip(node: &str) -> Option<IpAddr> {
    let host = if let Some(rest) = node.strip_prefix('[') {
        rest.split_once(']')?.0
    } else if node.matches(':').count() == 1 {
        node.split_once(':')?.0
    } else {
        node
    };
    cidr::parse_ip(host).ok().or_else(|| {
        // A dual-stack proxy may write an IPv4-mapped address: it is that IPv4 client.
        host.parse::<IpAddr>().ok().map(cidr::canonical)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &str) -> Vec<Cidr> {
        cidr::parse_list(s).unwrap()
    }

    fn peer(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let c = resolve(
            peer("203.0.113.9:5000"),
            &[],
            &[],
            &["10.0.0.1"],
            None,
            false,
        );
        assert_eq!(c.ip, ip("203.0.113.9"));
        assert_eq!(c.address.as_deref(), Some("203.0.113.9:5000"));
        // A peer that is not a trusted proxy cannot forge its address either.
        let c = resolve(
            peer("203.0.113.9:5000"),
            &nets("10.0.0.0/8"),
            &["for=10.1.1.1"],
            &["10.1.1.1"],
            None,
            false,
        );
        assert_eq!(c.ip, ip("203.0.113.9"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = nets("10.0.0.0/8");
        // The client wrote 1.1.1.1 itself; our proxies saw 198.51.100.7 then 10.0.0.2.
        let c = resolve(
            peer("10.0.0.1:1"),
            &trusted,
            &[],
            &["1.1.1.1, 198.51.100.7", "10.0.0.2"],
            None,
            false,
        );
        assert_eq!(c.ip, ip("198.51.100.7"));
        assert_eq!(c.address.as_deref(), Some("198.51.100.7"));
        // Every hop trusted: the leftmost is the client.
        let c = resolve(
            peer("10.0.0.1:1"),
            &trusted,
            &[],
            &["10.9.9.9"],
            None,
            false,
        );
        assert_eq!(c.ip, ip("10.9.9.9"));
        // A hop that is no address: unknown client, the peer is what the audit trail shows.
        let c = resolve(peer("10.0.0.1:1"), &trusted, &[], &["unknown"], None, false);
        assert_eq!(c.ip, None);
        assert_eq!(c.address.as_deref(), Some("10.0.0.1:1"));
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for() {
        let trusted = nets("10.0.0.0/8,fd00::/8");
        let c = resolve(
            peer("[fd00::1]:443"),
            &trusted,
            &[r#"for=192.0.2.43, for="[2001:db8:cafe::17]:4711";proto=https"#],
            &["10.5.5.5"],
            None,
            false,
        );
        assert_eq!(c.ip, ip("2001:db8:cafe::17"));
        assert!(c.tls);
        let c = resolve(
            peer("10.0.0.1:1"),
            &trusted,
            &["for=_hidden"],
            &[],
            None,
            true,
        );
        assert_eq!(c.ip, None);
    }

    #[test]
    fn proto_comes_from_the_trusted_proxy() {
        let trusted = nets("10.0.0.0/8");
        let c = resolve(
            peer("10.0.0.1:1"),
            &trusted,
            &[],
            &["1.2.3.4"],
            Some("https"),
            false,
        );
        assert!(c.tls);
        let c = resolve(
            peer("10.0.0.1:1"),
            &trusted,
            &[],
            &["1.2.3.4"],
            Some("http"),
            true,
        );
        assert!(!c.tls);
        // An untrusted peer's header is ignored.
        let c = resolve(peer("1.2.3.4:1"), &trusted, &[], &[], Some("https"), false);
        assert!(!c.tls);
    }
}
