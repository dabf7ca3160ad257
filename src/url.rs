//! `http://host[:port][/base]` URLs and their authority, checked once:
//! by `config` when it validates a URL and by the HTTP client that uses
//! it, so both accept and refuse the same text.

/// `http://host[:port][/base]`, parsed once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// As written in the Host header (`[::1]:11434`).
    pub authority: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Path prefix without a trailing slash (`""` or `/ollama`).
    pub(crate) base: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        check_url_chars(url)?;
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!(
                "{url:?} must start with http:// (a local plaintext API; https is not supported)"
            )
        })?;
        let (authority, base) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if base.contains(['?', '#']) {
            return Err(format!("{url:?}: a query or fragment is not supported"));
        }
        let (host, port) = split_authority(url, authority)?;
        let port = port.unwrap_or(80);
        Ok(HttpUrl {
            authority: authority.to_owned(),
            host: host.to_owned(),
            port,
            base: base.trim_end_matches('/').to_owned(),
        })
    }
}

/// A URL goes into a request line and a Host header as written: a space,
/// CR or LF there would end them early (request splitting).
pub fn check_url_chars(url: &str) -> Result<(), String> {
    match url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        Some(c) => Err(format!(
            "{url:?} holds {c:?}: a URL has no spaces or control characters (percent-encode them)"
        )),
        None => Ok(()),
    }
}

/// Host and port of a URL's authority (`host`, `host:port`, `[v6]:port`);
/// `url` is for the error messages. Credentials (`user:pw@host`) are
/// refused: they would be shown and logged with the URL.
pub fn split_authority<'a>(
    url: &str,
    authority: &'a str,
) -> Result<(&'a str, Option<u16>), String> {
    if authority.contains('@') {
        // Not echoed: the error is printed.
        return Err("credentials in a URL (user:password@host) are not supported".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?} has an unclosed [IPv6] host"))?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{url:?} has an invalid port {p:?}"))
        })
        .transpose()?;
    Ok((host, port))
}
