//! `-l/--selector`: kubectl's label selector syntax, parsed and matched
//! against a document's labels. `k=v` (or `k==v`), `k!=v`, `k`, `!k`,
//! `k in (a,b)`, `k notin (a,b)`; requirements joined by `,` must all hold.
//! As in kubectl, `!=` and `notin` also match a document without the label,
//! and an empty selector matches everything. (`k>n`/`k<n` are not supported.)

use anyhow::Result;

/// A document's labels, (key, value) in the order written.
pub type Labels = Vec<(String, String)>;

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Exists(String),
    Absent(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    Equals,
    NotEquals,
    Bang,
    Open,
    Close,
    Comma,
}

impl Selector {
    /// Parses `text`; the error names the flag and the expected syntax.
    pub fn parse(text: &str) -> Result<Selector> {
        parse_requirements(text).map_err(|problem| {
            anyhow::anyhow!(
                "invalid --selector `{text}`: {problem}; write kubectl's syntax, e.g. `app=web`, `tier!=db`, `env in (dev,test)`, `!canary`, joined by `,`"
            )
        })
    }

    /// Whether a document with these labels (key, value) is selected.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = |key: &str| {
            labels
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        self.requirements
            .iter()
            .all(|requirement| match requirement {
                Requirement::Exists(key) => value(key).is_some(),
                Requirement::Absent(key) => value(key).is_none(),
                Requirement::In(key, values) => {
                    value(key).is_some_and(|v| values.iter().any(|x| x == v))
                }
                Requirement::NotIn(key, values) => {
                    !value(key).is_some_and(|v| values.iter().any(|x| x == v))
                }
            })
    }
}

fn parse_requirements(text: &str) -> Result<Selector, String> {
    let tokens = tokenize(text);
    let mut tokens = tokens.iter().copied().peekable();
    let mut requirements = Vec::new();
    if tokens.peek().is_none() {
        return Ok(Selector { requirements });
    }
    loop {
        let requirement = match tokens.next() {
            Some(Token::Bang) => Requirement::Absent(key(tokens.next())?),
            Some(Token::Word(word)) => {
                let key = key(Some(Token::Word(word)))?;
                match tokens.peek() {
                    None | Some(Token::Comma) => Requirement::Exists(key),
                    Some(Token::Equals) | Some(Token::NotEquals) => {
                        let negated = tokens.next() == Some(Token::NotEquals);
                        // `k=` selects the empty value, as in kubectl.
                        let value = match tokens.peek() {
                            Some(&Token::Word(value)) => {
                                tokens.next();
                                label_value(value)?
                            }
                            None | Some(Token::Comma) => String::new(),
                            Some(_) => {
                                return Err(format!("expected a value after `{key}`'s operator"));
                            }
                        };
                        if negated {
                            Requirement::NotIn(key, vec![value])
                        } else {
                            Requirement::In(key, vec![value])
                        }
                    }
                    Some(&Token::Word(op @ ("in" | "notin"))) => {
                        let negated = op == "notin";
                        tokens.next();
                        let values = value_set(&mut tokens, &key)?;
                        if negated {
                            Requirement::NotIn(key, values)
                        } else {
                            Requirement::In(key, values)
                        }
                    }
                    Some(_) => {
                        return Err(format!(
                            "expected `=`, `==`, `!=`, `in` or `notin` after `{key}`"
                        ));
                    }
                }
            }
            _ => return Err("expected a label key".to_string()),
        };
        requirements.push(requirement);
        match tokens.next() {
            None => return Ok(Selector { requirements }),
            Some(Token::Comma) if tokens.peek().is_some() => {}
            Some(Token::Comma) => return Err("a `,` ends it".to_string()),
            Some(_) => return Err("expected `,` between requirements".to_string()),
        }
    }
}

/// `( v1, v2, … )`, at least one value.
fn value_set<'a>(
    tokens: &mut impl Iterator<Item = Token<'a>>,
    key: &str,
) -> Result<Vec<String>, String> {
    let expected = || format!("expected `(VALUE,…)` after `{key} in` or `{key} notin`");
    if tokens.next() != Some(Token::Open) {
        return Err(expected());
    }
    let mut values = Vec::new();
    loop {
        match tokens.next() {
            Some(Token::Word(value)) => values.push(label_value(value)?),
            _ => return Err(expected()),
        }
        match tokens.next() {
            Some(Token::Comma) => {}
            Some(Token::Close) => return Ok(values),
            _ => return Err(format!("`{key}`'s value set is not closed with `)`")),
        }
    }
}

/// A label key: `[PREFIX/]NAME` of letters, digits, `-`, `_`, `.`.
fn key(token: Option<Token>) -> Result<String, String> {
    let Some(Token::Word(word)) = token else {
        return Err("expected a label key".to_string());
    };
    let valid = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let name_ok = match word.split_once('/') {
        Some((prefix, name)) => valid(prefix) && valid(name),
        None => valid(word),
    };
    if !name_ok {
        return Err(format!("`{word}` is not a label key"));
    }
    Ok(word.to_string())
}

/// A label value: letters, digits, `-`, `_`, `.`.
fn label_value(word: &str) -> Result<String, String> {
    if !word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!("`{word}` is not a label value"));
    }
    Ok(word.to_string())
}

fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let (token, len) = match c {
            c if c.is_whitespace() => {
                rest = &rest[c.len_utf8()..];
                continue;
            }
            ',' => (Token::Comma, 1),
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            '=' if rest.starts_with("==") => (Token::Equals, 2),
            '=' => (Token::Equals, 1),
            '!' if rest.starts_with("!=") => (Token::NotEquals, 2),
            '!' => (Token::Bang, 1),
            _ => {
                let len = rest
                    .find(|c: char| c.is_whitespace() || ",()=!".contains(c))
                    .unwrap_or(rest.len());
                (Token::Word(&rest[..len]), len)
            }
        };
        tokens.push(token);
        rest = &rest[len..];
    }
    tokens
}

/// Labels from literal pairs, for tests.
#[cfg(test)]
pub(super) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_matches_as_kubectl_does() {
        let web = labels(&[("app", "web"), ("tier", "front"), ("x.io/team", "a")]);
        let none = labels(&[]);
        let table: &[(&str, bool, bool)] = &[
            ("", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            (" app = web ", true, false),
            ("app!=web", false, true),
            ("app!=db", true, true),
            ("app", true, false),
            ("!app", false, true),
            ("!nope", true, true),
            ("app in (web, db)", true, false),
            ("app in (db)", false, false),
            ("app notin (db,x)", true, true),
            ("app notin (web)", false, true),
            ("app=web,tier=front", true, false),
            ("app=web,tier=back", false, false),
            ("x.io/team=a", true, false),
            ("app=", false, false),
        ];
        for (text, on_web, on_none) in table {
            let selector = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(selector.matches(&web), *on_web, "{text} on web");
            assert_eq!(selector.matches(&none), *on_none, "{text} on none");
        }
        let empty = Selector::parse("app=").expect("k= is valid");
        assert!(empty.matches(&labels(&[("app", "")])));
    }

    #[test]
    fn bad_selectors_name_the_flag() {
        for text in [
            "=web",
            "app=web,",
            ",app",
            "app web",
            "app in web",
            "app in ()",
            "app in (a,b",
            "app in (a b)",
            "app=(x)",
            "app=w@b",
            "a/b/c=x",
            "!",
            "app>3",
        ] {
            let err = Selector::parse(text).expect_err(text).to_string();
            assert!(
                err.starts_with(&format!("invalid --selector `{text}`: ")),
                "{err}"
            );
        }
    }
}
