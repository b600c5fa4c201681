//! What a registry asks of its clients, read from the `WWW-Authenticate`
//! header of a 401 (to `GET /v2/` first, or to any later request): nothing,
//! HTTP Basic, or a Bearer token from a token server (distribution's token
//! authentication). Parsing is http-auth's; this module picks the scheme.

use reqwest::Url;
use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// The registry let an anonymous client in.
    None,
    Basic,
    Bearer {
        realm: Url,
        service: Option<String>,
    },
}

/// The challenge of a 401 response: Bearer when offered (it is the richer
/// scheme), else Basic; `None` when the header is missing or unreadable.
pub fn from_headers(headers: &HeaderMap) -> Option<Challenge> {
    let mut basic = false;
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(text) = value.to_str() else { continue };
        let Ok(challenges) = http_auth::parse_challenges(text) else {
            continue;
        };
        for challenge in challenges {
            if challenge.scheme.eq_ignore_ascii_case("bearer") {
                let param = |name: &str| {
                    challenge
                        .params
                        .iter()
                        .find(|(key, _)| key.eq_ignore_ascii_case(name))
                        .map(|(_, value)| value.to_unescaped())
                };
                if let Some(realm) = param("realm").and_then(|r| Url::parse(&r).ok()) {
                    return Some(Challenge::Bearer {
                        realm,
                        service: param("service"),
                    });
                }
            } else if challenge.scheme.eq_ignore_ascii_case("basic") {
                basic = true;
            }
        }
    }
    basic.then_some(Challenge::Basic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(WWW_AUTHENTICATE, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn bearer_challenges() {
        let challenge = from_headers(&headers(&[
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        ]));
        assert_eq!(
            challenge,
            Some(Challenge::Bearer {
                realm: Url::parse("https://auth.example/token").unwrap(),
                service: Some("registry.example".into()),
            })
        );
        let challenge = from_headers(&headers(&[
            r#"Basic realm="x""#,
            r#"bearer realm="http://127.0.0.1:9/auth""#,
        ]));
        assert!(matches!(
            challenge,
            Some(Challenge::Bearer { service: None, .. })
        ));
    }

    #[test]
    fn basic_and_unreadable_challenges() {
        assert_eq!(
            from_headers(&headers(&[r#"Basic realm="Registry Realm""#])),
            Some(Challenge::Basic)
        );
        assert_eq!(from_headers(&headers(&[])), None);
        assert_eq!(from_headers(&headers(&[r#"Bearer service="x""#])), None);
        assert_eq!(from_headers(&headers(&["Negotiate"])), None);
    }
}
