//! IP addresses and CIDR prefixes as policies, flags and CEL write them, with the parsing rules
//! of Go's `net/netip` that the Kubernetes CEL IP/CIDR library uses: no zones (`fe80::1%eth0`),
//! no IPv4-mapped IPv6 (`::ffff:10.0.0.1`), no leading zeros, and a decimal prefix length
//! without a leading zero. The address of a prefix need not be masked (`10.1.2.3/8` is
//! accepted and keeps its address; [`Cidr::masked`] gives `10.0.0.0/8`).
//!
//! A leaf: pure parsing and arithmetic, no I/O, no crate imports. Used by `allowedNetworks`,
//! `--trusted-proxies` and the CEL `ip()`/`cidr()` functions, so all three agree.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Why an address or prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not an IP address.
    #[error("not an IP address")]
    NotAnAddress,
    /// An IPv6 zone (`%eth0`) was given.
    #[error("IP address with zone value is not allowed")]
    Zone,
    /// An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) was given.
    #[error("IPv4-mapped IPv6 address is not allowed")]
    Mapped,
    /// No `/`, or a prefix length that is not a decimal in range.
    #[error("not a CIDR prefix (address/length)")]
    NotAPrefix,
}

/// Parses one IP address, IPv4 or IPv6, the Kubernetes way (see the module docs).
///
/// # Errors
/// A zone, an IPv4-mapped IPv6 address, or anything that is not an address.
pub fn parse_ip(text: &str) -> Result<IpAddr, ParseError> {
    if text.contains('%') {
        return Err(ParseError::Zone);
    }
    let ip = IpAddr::from_str(text).map_err(|_| ParseError::NotAnAddress)?;
    if let IpAddr::V6(v6) = ip
        && v6.to_ipv4_mapped().is_some()
    {
        return Err(ParseError::Mapped);
    }
    Ok(ip)
}

/// An address with a prefix length: `10.0.0.0/8`, `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// Parses `address/length` (see the module docs).
    ///
    /// # Errors
    /// No `/`, a bad address, or a length that is not a plain decimal within the family.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let (addr, len) = text.split_once('/').ok_or(ParseError::NotAPrefix)?;
        let addr = parse_ip(addr)?;
        let plain = !len.is_empty()
            && len.len() <= 3
            && len.bytes().all(|b| b.is_ascii_digit())
            && (len == "0" || !len.starts_with('0'));
        let len: u8 = if plain {
            len.parse().map_err(|_| ParseError::NotAPrefix)?
        } else {
            return Err(ParseError::NotAPrefix);
        };
        if len > max_len(addr) {
            return Err(ParseError::NotAPrefix);
        }
        Ok(Self { addr, len })
    }

    /// The address as written (not masked).
    pub fn ip(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The prefix with its host bits cleared.
    pub fn masked(&self) -> Self {
        Self {
            addr: mask(self.addr, self.len),
            len: self.len,
        }
    }

    /// Whether `ip` is inside (an address of the other family never is).
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        same_family(self.addr, ip) && mask(ip, self.len) == mask(self.addr, self.len)
    }

    /// Whether every address of `other` is inside.
    pub fn contains_cidr(&self, other: &Cidr) -> bool {
        other.len >= self.len && self.contains_ip(other.addr)
    }
}

impl FromStr for Cidr {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Parses a comma-separated list of prefixes (`--trusted-proxies`), ignoring blanks around
/// each; a bare address is its own `/32` or `/128`.
///
/// # Errors
/// The first entry that is neither a prefix nor an address, quoted.
pub fn parse_list(text: &str) -> Result<Vec<Cidr>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse_prefix_or_address(s).map_err(|e| format!("{s:?}: {e}")))
        .collect()
}

/// A prefix, or a bare address as its own single-address prefix.
///
/// # Errors
/// As [`Cidr::parse`] and [`parse_ip`].
pub fn parse_prefix_or_address(text: &str) -> Result<Cidr, ParseError> {
    if text.contains('/') {
        Cidr::parse(text)
    } else {
        let addr = parse_ip(text)?;
        Ok(Cidr {
            addr,
            len: max_len(addr),
        })
    }
}

/// `ip` as the family-native form: an IPv4-mapped IPv6 peer (a dual-stack socket's view of an
/// IPv4 client) becomes the IPv4 address, so prefixes of either form compare as written.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn max_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        parse_ip(s).unwrap()
    }

    #[test]
    fn addresses_follow_netip() {
        assert!(parse_ip("10.1.2.3").is_ok());
        assert!(parse_ip("2001:db8::1").is_ok());
        assert_eq!(parse_ip("fe80::1%eth0"), Err(ParseError::Zone));
        assert_eq!(parse_ip("::ffff:10.0.0.1"), Err(ParseError::Mapped));
        assert_eq!(parse_ip("010.0.0.1"), Err(ParseError::NotAnAddress));
        assert_eq!(parse_ip("10.0.0"), Err(ParseError::NotAnAddress));
        assert_eq!(parse_ip(""), Err(ParseError::NotAnAddress));
    }

    #[test]
    fn prefixes_follow_netip() {
        let c = Cidr::parse("10.1.2.3/8").unwrap();
        assert_eq!(c.ip(), ip("10.1.2.3"));
        assert_eq!(c.masked().to_string(), "10.0.0.0/8");
        assert_eq!(c.prefix_len(), 8);
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/08",
            "10.0.0.0/",
            "10.0.0.0/+8",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert!(Cidr::parse("::/0").is_ok());
        assert!(Cidr::parse("2001:db8::/129").is_err());
    }

    #[test]
    fn containment() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains_ip(ip("10.255.0.1")));
        assert!(!c.contains_ip(ip("11.0.0.1")));
        assert!(!c.contains_ip(ip("::1")), "other family");
        assert!(c.contains_cidr(&Cidr::parse("10.1.0.0/16").unwrap()));
        assert!(!c.contains_cidr(&Cidr::parse("10.0.0.0/7").unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains_ip(ip("1.2.3.4")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains_ip(ip("2001:db8:ffff::1")));
        assert!(!v6.contains_ip(ip("2001:db9::1")));
    }

    #[test]
    fn lists_and_mapped_peers() {
        let list = parse_list("10.0.0.0/8, 127.0.0.1 ,,::1").unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[1].to_string(), "127.0.0.1/32");
        assert!(parse_list("10.0.0.0/8,nope").unwrap_err().contains("nope"));
        assert_eq!(
            canonical("::ffff:10.0.0.1".parse().unwrap()),
            ip("10.0.0.1")
        );
    }
}
