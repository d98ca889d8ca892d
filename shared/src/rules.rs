//! Route rules (`AUTHORIZER_ROUTE_RULES`): which role or scope a route asks of a principal.
//! Parsed once, with the configuration; applied by the authorizer.

/// What a route rule asks of a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Role(String),
    Scope(String),
    /// A second factor at sign-in (`mfa`: the token's `amr` says `mfa`).
    Mfa,
}

/// `METHOD /path/pattern=role:R`, `=scope:S` or `=mfa`; `*` matches any method or any
/// characters. Several rules may name one route: each applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    pub method: String,
    pub path: String,
    pub requirement: Requirement,
}

fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

impl RouteRule {
    /// Parse `;`-separated rules (empty text = no rules).
    pub fn parse_all(text: &str) -> Result<Vec<Self>, String> {
        text.split(';')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|rule| {
                let (route, need) = rule
                    .split_once('=')
                    .ok_or_else(|| format!("{rule:?}: expected ROUTE=role:R|scope:S|mfa"))?;
                let (method, path) = route
                    .trim()
                    .split_once(' ')
                    .ok_or_else(|| format!("{rule:?}: expected METHOD /path"))?;
                let (method, path) = (method.trim().to_ascii_uppercase(), path.trim().to_owned());
                if !path.starts_with('/') || path.contains(char::is_whitespace) {
                    return Err(format!("{rule:?}: the path must start with /"));
                }
                let need = need.trim();
                let requirement = match need.split_once(':') {
                    _ if need == "mfa" => Requirement::Mfa,
                    Some(("role", r)) if !r.is_empty() => Requirement::Role(r.to_owned()),
                    Some(("scope", s)) if !s.is_empty() => Requirement::Scope(s.to_owned()),
                    _ => {
                        return Err(format!(
                            "{rule:?}: the requirement must be role:R, scope:S or mfa"
                        ));
                    }
                };
                Ok(Self {
                    method,
                    path,
                    requirement,
                })
            })
            .collect()
    }

    /// Whether the rule covers a request of `method` to `path`.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        (self.method == "*" || self.method == method) && glob(&self.path, path)
    }

    /// The execute-api resource this rule covers under `stage_arn` (`arn:...:api/stage`).
    pub fn resource(&self, stage_arn: &str) -> String {
        format!(
            "{stage_arn}/{}/{}",
            self.method,
            self.path.trim_start_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("/admin/*", "/admin/users"));
        assert!(glob("/admin/*", "/admin/"));
        assert!(!glob("/admin/*", "/administrator"));
        assert!(glob("/*/reports", "/2024/reports"));
        assert!(glob("/exact", "/exact"));
        assert!(!glob("/exact", "/exact/x"));
        assert!(glob("*", "/anything"));
        assert!(!glob("/a*b*c", "/ab"));
    }

    #[test]
    fn rules_parse_and_reject_junk() {
        let rules =
            RouteRule::parse_all("GET /admin/*=role:admin; * /orders=scope:orders:write").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].requirement, Requirement::Role("admin".into()));
        assert_eq!(rules[1].method, "*");
        assert_eq!(
            rules[1].requirement,
            Requirement::Scope("orders:write".into())
        );
        assert!(RouteRule::parse_all("").unwrap().is_empty());
        for bad in [
            "GET /x",
            "GET x=role:a",
            "/x=role:a",
            "GET /x=group:a",
            "GET /x=role:",
        ] {
            assert!(RouteRule::parse_all(bad).is_err(), "{bad}");
        }
    }
}
