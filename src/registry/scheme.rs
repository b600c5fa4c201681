//! HTTPS or plain HTTP (SPEC §7): every registry is spoken to over verified
//! HTTPS; plain HTTP is a fallback only for loopback hosts and for hosts
//! named by `--insecure-registry`, and only when HTTPS fails for a reason
//! other than an untrusted certificate.

/// Whether plain HTTP may be used with this registry without asking.
pub fn is_loopback(registry: &str) -> bool {
    let host = host_of(registry);
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host part of `host[:port]` or `[v6]:port`.
fn host_of(registry: &str) -> &str {
    match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.split(':').next().unwrap_or(registry),
    }
}

/// The hosts the user allowed plain HTTP for.
#[derive(Debug, Clone, Default)]
pub struct SchemePolicy {
    insecure: Vec<String>,
}

impl SchemePolicy {
    /// `insecure` holds the `--insecure-registry` values, `HOST[:PORT]`
    /// (a scheme or trailing slash a user pastes along is ignored).
    pub fn new(insecure: &[String]) -> SchemePolicy {
        SchemePolicy {
            insecure: insecure
                .iter()
                .map(|entry| {
                    let entry = entry.trim();
                    let entry = entry
                        .strip_prefix("http://")
                        .or_else(|| entry.strip_prefix("https://"))
                        .unwrap_or(entry);
                    entry.trim_end_matches('/').to_ascii_lowercase()
                })
                .filter(|entry| !entry.is_empty())
                .collect(),
        }
    }

    /// Whether plain HTTP may be tried for `authority` (`host[:port]`): a
    /// loopback host, or one named by `--insecure-registry` (with that port,
    /// or any port when the flag gave none).
    pub fn allows_http(&self, authority: &str) -> bool {
        let authority = authority.to_ascii_lowercase();
        is_loopback(&authority)
            || self
                .insecure
                .iter()
                .any(|entry| *entry == authority || entry == host_of(&authority))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "localhost:5000",
            "LOCALHOST:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "registry.localhost:80",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "ghcr.io",
            "10.0.0.1:5000",
            "0.0.0.0:5000",
            "localhost.example.com",
            "128.0.0.1",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn insecure_registries_allow_http() {
        let policy = SchemePolicy::new(&[
            "http://10.0.0.1:5000/".to_string(),
            "Registry.Internal".to_string(),
        ]);
        assert!(policy.allows_http("10.0.0.1:5000"));
        assert!(!policy.allows_http("10.0.0.1:5001"));
        assert!(policy.allows_http("registry.internal"));
        assert!(policy.allows_http("registry.internal:8443"));
        assert!(policy.allows_http("127.0.0.1:1"));
        assert!(!policy.allows_http("ghcr.io"));
        assert!(!SchemePolicy::default().allows_http("0.0.0.0:5000"));
    }
}
