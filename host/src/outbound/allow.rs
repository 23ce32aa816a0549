//! Which destinations a plugin may reach: `allowed_hosts` patterns in the
//! spirit of Spin's `allowed_outbound_hosts`, and the address rule that keeps
//! wildcards off loopback and private networks.
//!
//! A pattern is `scheme://host[:port]`:
//! - scheme `http`, `https` or `*`;
//! - host `*` (any host), `*.example.com` (its subdomains), a name, an IPv4
//!   address or a bracketed IPv6 address;
//! - port a number or `*`; without one, the scheme's default port (any
//!   default port for scheme `*`).
//!
//! A wildcard host only ever reaches public addresses: a URL naming a private,
//! loopback or link-local address, or a name that resolves to one (DNS
//! rebinding), needs a pattern naming that host exactly. Pure code: the
//! resolver (`client.rs`) asks [`Allowlist::explicit`] and [`is_public`].
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A parsed `allowed_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// The entry as written, used as the metrics label of its destinations.
    pub text: String,
    scheme: Option<Scheme>,
    host: HostMatch,
    port: PortMatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    SubdomainsOf(String),
    Exact(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortMatch {
    Default,
    Any,
    Is(u16),
}

impl Scheme {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl HostPattern {
    /// Parses one entry; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("`{text}`: expected scheme://host[:port]"))?;
        let scheme = match scheme {
            "*" => None,
            s => Some(
                Scheme::parse(s)
                    .ok_or_else(|| format!("`{text}`: the scheme must be http, https or *"))?,
            ),
        };
        if rest.contains('/') || rest.contains('@') || rest.contains('?') {
            return Err(format!(
                "`{text}`: only scheme://host[:port], without path or user"
            ));
        }
        let (host, port) = split_host_port(rest)
            .ok_or_else(|| format!("`{text}`: the port must be a number or *"))?;
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            if !valid_name(domain) {
                return Err(format!("`{text}`: `{domain}` is not a host name"));
            }
            HostMatch::SubdomainsOf(domain.to_owned())
        } else if valid_name(&host) || host.parse::<IpAddr>().is_ok() {
            HostMatch::Exact(host)
        } else {
            return Err(format!("`{text}`: `{host}` is not a host name or address"));
        };
        Ok(HostPattern {
            text: text.to_owned(),
            scheme,
            host,
            port,
        })
    }

    /// Whether a request to `scheme://host:port` matches. `host` is lower
    /// case, IPv6 without brackets.
    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let Some(scheme) = Scheme::parse(scheme) else {
            return false;
        };
        if self.scheme.is_some_and(|s| s != scheme) {
            return false;
        }
        let port_ok = match self.port {
            PortMatch::Any => true,
            PortMatch::Is(p) => p == port,
            PortMatch::Default => port == self.scheme.unwrap_or(scheme).default_port(),
        };
        let literal = host.parse::<IpAddr>().ok();
        let host_ok = match &self.host {
            // Wildcards reach only public addresses; a literal must be public.
            HostMatch::Any => literal.is_none_or(is_public),
            HostMatch::SubdomainsOf(domain) => {
                literal.is_none()
                    && host.len() > domain.len() + 1
                    && host.ends_with(domain.as_str())
                    && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
            }
            HostMatch::Exact(h) => same_host(h, host),
        };
        port_ok && host_ok
    }
}

/// IPv6 literals are compared as addresses (`::1` is `0:0::1`).
fn same_host(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn split_host_port(rest: &str) -> Option<(&str, PortMatch)> {
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let port = match port {
        None => PortMatch::Default,
        Some("*") => PortMatch::Any,
        Some(p) => PortMatch::Is(p.parse().ok().filter(|p| *p != 0)?),
    };
    (!host.is_empty()).then_some((host, port))
}

/// A DNS name: dot-separated labels of letters, digits and `-`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A plugin's `allowed_hosts`, parsed.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    patterns: Vec<HostPattern>,
}

impl Allowlist {
    /// Parses every entry.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        Ok(Allowlist {
            patterns: entries
                .into_iter()
                .map(HostPattern::parse)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The first pattern allowing `url` (its index and the pattern), or why none does.
    pub fn check(&self, url: &reqwest::Url) -> Result<(usize, &HostPattern), String> {
        let scheme = url.scheme();
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(format!("`{url}` names no host")),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("`{url}` has no port"))?;
        self.patterns
            .iter()
            .enumerate()
            .find(|(_, p)| p.matches(scheme, &host, port))
            .ok_or_else(|| {
                format!(
                    "the destination {scheme}://{host}:{port} is not in this plugin's outbound.allowed_hosts{}",
                    if host.parse::<IpAddr>().is_ok_and(|ip| !is_public(ip)) {
                        " (a loopback or private address needs an entry naming it)"
                    } else {
                        ""
                    }
                )
            })
    }

    /// True if a pattern names `host` exactly: its name may resolve to any
    /// address, private ones included.
    pub fn explicit(&self, host: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| matches!(&p.host, HostMatch::Exact(h) if same_host(h, host)))
    }

    /// True if nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Whether `ip` is a public unicast address: not loopback, private,
/// link-local (cloud metadata lives there), shared, documentation,
/// benchmarking, multicast, reserved or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || first == 0x0064) // NAT64 well-known prefix: hides an IPv4 address
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(patterns: &[&str], url: &str) -> bool {
        let list = Allowlist::parse(patterns.iter().copied()).unwrap();
        list.check(&reqwest::Url::parse(url).unwrap()).is_ok()
    }

    #[test]
    fn patterns_match_scheme_host_and_port() {
        let p = ["https://hooks.example.com"];
        assert!(allows(&p, "https://hooks.example.com/x?y=1"));
        assert!(allows(&p, "https://HOOKS.example.com:443/"));
        assert!(!allows(&p, "http://hooks.example.com/"));
        assert!(!allows(&p, "https://hooks.example.com:8443/"));
        assert!(!allows(&p, "https://evil.com/hooks.example.com"));
        assert!(!allows(&p, "https://hooks.example.com.evil.com/"));
        assert!(allows(
            &["https://*.example.com"],
            "https://a.b.example.com/"
        ));
        assert!(!allows(&["https://*.example.com"], "https://example.com/"));
        assert!(!allows(
            &["https://*.example.com"],
            "https://badexample.com/"
        ));
        assert!(allows(&["http://127.0.0.1:*"], "http://127.0.0.1:9000/"));
        assert!(allows(
            &["*://api.example.com:8080"],
            "http://api.example.com:8080/"
        ));
        assert!(allows(&["http://[::1]:8080"], "http://[0:0::1]:8080/"));
    }

    #[test]
    fn wildcards_never_reach_private_or_loopback_addresses() {
        let any = ["https://*", "http://*:*"];
        assert!(allows(&any, "https://8.8.8.8/"));
        for url in [
            "http://127.0.0.1:8080/",
            "https://10.1.2.3/",
            "https://192.168.0.1/",
            "https://172.16.5.4/",
            "http://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[64:ff9b::7f00:1]/",
        ] {
            assert!(!allows(&any, url), "{url}");
        }
        let list = Allowlist::parse(["https://*"]).unwrap();
        let e = list
            .check(&reqwest::Url::parse("https://127.0.0.1/").unwrap())
            .unwrap_err();
        assert!(e.contains("needs an entry naming it"), "{e}");
    }

    #[test]
    fn only_exact_entries_are_explicit() {
        let list = Allowlist::parse(["https://*", "http://localhost:*", "https://*.corp"]).unwrap();
        assert!(list.explicit("localhost"));
        assert!(!list.explicit("anything.com"));
        assert!(!list.explicit("a.corp"));
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://example.com/path",
            "https://user@example.com",
            "https://example.com:http",
            "https://exa mple.com",
            "https://*.",
            "https://:80",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
