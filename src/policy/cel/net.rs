//! The Kubernetes CEL IP/CIDR library, with its names and semantics (see
//! <https://kubernetes.io/docs/reference/using-api/cel/#kubernetes-ip-address-library>):
//! `ip(s)`, `isIP(s)`, `cidr(s)`, `isCIDR(s)`; on a CIDR `containsIP(ip | string)`,
//! `containsCIDR(cidr | string)`, `ip()`, `masked()`, `prefixLength()`; on an IP `family()`,
//! `isUnspecified()`, `isLoopback()`, `isLinkLocalMulticast()`, `isLinkLocalUnicast()`,
//! `isGlobalUnicast()`; `string(ip)` and `string(cidr)`; `==` between two of a kind.
//! Parsing is `crate::cidr`'s, shared with `allowedNetworks` and `--trusted-proxies`.
//!
//! Not provided: `ip.isCanonical(s)` (a namespaced function; no policy needs it yet). A bad
//! address or prefix is an evaluation error, which the caller turns into a denial.

use std::net::IpAddr;

use cel::common::types::{CelBool, CelInt, CelString, Type};
use cel::common::value::{StaticVal, Val};
use cel::{Env, ExecutionError};

use crate::cidr::{self, Cidr};

/// The CEL type of IP values (Kubernetes: `net.IP`).
static IP_TYPE: Type = Type::new_unspecified_type("net.IP");
/// The CEL type of CIDR values (Kubernetes: `net.CIDR`).
static CIDR_TYPE: Type = Type::new_unspecified_type("net.CIDR");

/// An IP value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip(pub IpAddr);

/// A CIDR value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CidrValue(pub Cidr);

impl Val for Ip {
    fn get_type(&self) -> &Type {
        &IP_TYPE
    }
    fn cel_type() -> &'static Type {
        &IP_TYPE
    }
    fn equals(&self, other: &dyn Val) -> bool {
        other.downcast_ref::<Ip>().is_some_and(|o| o == self)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(*self)
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}
impl StaticVal for Ip {}

impl Val for CidrValue {
    fn get_type(&self) -> &Type {
        &CIDR_TYPE
    }
    fn cel_type() -> &'static Type {
        &CIDR_TYPE
    }
    fn equals(&self, other: &dyn Val) -> bool {
        other.downcast_ref::<CidrValue>().is_some_and(|o| o == self)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(*self)
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}
impl StaticVal for CidrValue {}

/// Registers the library on `env`.
///
/// # Panics
/// If `env` already declares one of these overloads: it is called once, at startup, on a fresh
/// standard environment, where that cannot happen.
pub(super) fn register(env: &mut Env) {
    // Every registration below names a distinct (name, signature) pair.
    let ok = |r: Result<(), cel::DeclarationError>| r.expect("a fresh Env has no such overload");
    ok(cel::add_overload!(env, fn ip: (CelString) -> Result<Ip>));
    ok(cel::add_overload!(env, fn is_ip: (CelString) -> CelBool, name = "isIP"));
    ok(cel::add_overload!(env, fn cidr: (CelString) -> Result<CidrValue>));
    ok(cel::add_overload!(env, fn is_cidr: (CelString) -> CelBool, name = "isCIDR"));
    ok(cel::add_overload!(env, fn ip_string: (Ip) -> CelString,
        name = "string", id = "ip_to_string"));
    ok(
        cel::add_overload!(env, fn cidr_string: (CidrValue) -> CelString,
        name = "string", id = "cidr_to_string"),
    );
    ok(
        cel::add_member_overload!(env, fn contains_ip: (CidrValue, Ip) -> CelBool,
        name = "containsIP"),
    );
    ok(
        cel::add_member_overload!(env, fn contains_ip_string: (CidrValue, CelString)
        -> Result<CelBool>, name = "containsIP"),
    );
    ok(
        cel::add_member_overload!(env, fn contains_cidr: (CidrValue, CidrValue) -> CelBool,
        name = "containsCIDR"),
    );
    ok(
        cel::add_member_overload!(env, fn contains_cidr_string: (CidrValue, CelString)
        -> Result<CelBool>, name = "containsCIDR"),
    );
    ok(cel::add_member_overload!(env, fn cidr_ip: (CidrValue) -> Ip, name = "ip"));
    ok(cel::add_member_overload!(env, fn masked: (CidrValue) -> CidrValue));
    ok(cel::add_member_overload!(env, fn prefix_length: (CidrValue) -> CelInt));
    ok(cel::add_member_overload!(env, fn family: (Ip) -> CelInt));
    ok(cel::add_member_overload!(env, fn is_unspecified: (Ip) -> CelBool));
    ok(cel::add_member_overload!(env, fn is_loopback: (Ip) -> CelBool));
    ok(cel::add_member_overload!(env, fn is_link_local_multicast: (Ip) -> CelBool));
    ok(cel::add_member_overload!(env, fn is_link_local_unicast: (Ip) -> CelBool));
    ok(cel::add_member_overload!(env, fn is_global_unicast: (Ip) -> CelBool));
}

fn fail(function: &str, text: &str, e: cidr::ParseError) -> ExecutionError {
    ExecutionError::function_error(function, format!("{}: {e}", crate::text::shown(text, 64)))
}

fn parse_ip(function: &str, text: &str) -> Result<IpAddr, ExecutionError> {
    cidr::parse_ip(text).map_err(|e| fail(function, text, e))
}

fn parse_cidr(function: &str, text: &str) -> Result<Cidr, ExecutionError> {
    Cidr::parse(text).map_err(|e| fail(function, text, e))
}

fn ip(s: &CelString<'_>) -> Result<Ip, ExecutionError> {
    parse_ip("ip", s.inner()).map(Ip)
}

fn is_ip(s: &CelString<'_>) -> CelBool {
    CelBool::from(cidr::parse_ip(s.inner()).is_ok())
}

fn cidr(s: &CelString<'_>) -> Result<CidrValue, ExecutionError> {
    parse_cidr("cidr", s.inner()).map(CidrValue)
}

fn is_cidr(s: &CelString<'_>) -> CelBool {
    CelBool::from(Cidr::parse(s.inner()).is_ok())
}

fn ip_string(ip: &Ip) -> CelString<'static> {
    CelString::from(ip.0.to_string())
}

fn cidr_string(c: &CidrValue) -> CelString<'static> {
    CelString::from(c.0.to_string())
}

fn contains_ip(c: &CidrValue, ip: &Ip) -> CelBool {
    CelBool::from(c.0.contains_ip(ip.0))
}

fn contains_ip_string(c: &CidrValue, s: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    let ip = parse_ip("containsIP", s.inner())?;
    Ok(CelBool::from(c.0.contains_ip(ip)))
}

fn contains_cidr(c: &CidrValue, other: &CidrValue) -> CelBool {
    CelBool::from(c.0.contains_cidr(&other.0))
}

fn contains_cidr_string(c: &CidrValue, s: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    let other = parse_cidr("containsCIDR", s.inner())?;
    Ok(CelBool::from(c.0.contains_cidr(&other)))
}

fn cidr_ip(c: &CidrValue) -> Ip {
    Ip(c.0.ip())
}

fn masked(c: &CidrValue) -> CidrValue {
    CidrValue(c.0.masked())
}

fn prefix_length(c: &CidrValue) -> CelInt {
    CelInt::from(i64::from(c.0.prefix_len()))
}

fn family(ip: &Ip) -> CelInt {
    CelInt::from(if ip.0.is_ipv4() { 4 } else { 6 })
}

fn is_unspecified(ip: &Ip) -> CelBool {
    CelBool::from(ip.0.is_unspecified())
}

fn is_loopback(ip: &Ip) -> CelBool {
    CelBool::from(ip.0.is_loopback())
}

/// Go's `IsLinkLocalMulticast`: 224.0.0.0/24 and ff02::/16.
fn is_link_local_multicast(ip: &Ip) -> CelBool {
    CelBool::from(match ip.0 {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => v6.segments()[0] & 0xff0f == 0xff02,
    })
}

/// Go's `IsLinkLocalUnicast`: 169.254.0.0/16 and fe80::/10.
fn is_link_local_unicast(ip: &Ip) -> CelBool {
    CelBool::from(match ip.0 {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    })
}

/// Go's `IsGlobalUnicast`: not unspecified, loopback, multicast, link-local or (v4) broadcast.
fn is_global_unicast(ip: &Ip) -> CelBool {
    let link_local = is_link_local_unicast(ip).into_inner();
    CelBool::from(match ip.0 {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_multicast()
                || v4.is_broadcast()
                || link_local)
        }
        IpAddr::V6(v6) => {
            !(v6.is_unspecified() || v6.is_loopback() || v6.is_multicast() || link_local)
        }
    })
}
