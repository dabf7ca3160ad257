//! The one parser for the URLs the configuration holds (`export.endpoint`,
//! `ollama.url`): scheme, authority (`host`, `host:port`, `[v6]:port`) and
//! what follows. Pure and crate-free, so the configuration, the exporter,
//! the Ollama client and the activity probes all read a URL the same way.
//! [`HttpUrl`] lives here too, so `config` checks `ollama.url` with the
//! client's own rules without importing `sources`.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// The port a URL of this scheme means when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A URL split into its parts, borrowing the text. The authority is split
/// into host and port on demand ([`Url::host_port`]), so a caller can
/// refuse a scheme or a path before it judges the authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Url<'a> {
    /// `None` for a bare authority (`localhost:4317`).
    pub scheme: Option<Scheme>,
    /// As written, for a Host header (`[::1]:11434`).
    pub authority: &'a str,
    /// Path, query and fragment as written: `""`, `/ollama/`, `/a?q`.
    pub rest: &'a str,
}

impl<'a> Url<'a> {
    /// Host (without the IPv6 brackets) and port, if written.
    pub fn host_port(&self) -> Result<(&'a str, Option<u16>), UrlError> {
        split_authority(self.authority)
    }

    /// Host and port, else the scheme's default port; `None` for a bare
    /// authority without one.
    pub fn host_port_or_default(&self) -> Result<(&'a str, Option<u16>), UrlError> {
        let (host, port) = self.host_port()?;
        Ok((host, port.or(self.scheme.map(Scheme::default_port))))
    }
}

/// Why a URL was refused; [`UrlError::message`] words it with the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// A space or control character: it would end a request line or
    /// header early (request splitting).
    Char(char),
    /// A scheme other than `http://` or `https://`.
    Scheme,
    /// `user:password@host`: it would be shown and logged with the URL.
    Credentials,
    UnclosedIpv6,
    NoHost,
    /// Not a number in 1..=65535.
    Port(String),
}

impl UrlError {
    pub fn message(&self, url: &str) -> String {
        match self {
            UrlError::Char(c) => format!(
                "{url:?} holds {c:?}: a URL has no spaces or control characters (percent-encode them)"
            ),
            UrlError::Scheme => format!("{url:?} must start with http:// or https://"),
            // Not echoed: the error is printed.
            UrlError::Credentials => {
                "credentials in a URL (user:password@host) are not supported".into()
            }
            UrlError::UnclosedIpv6 => format!("{url:?} has an unclosed [IPv6] host"),
            UrlError::NoHost => format!("{url:?} has no host"),
            UrlError::Port(p) => format!("{url:?} has an invalid port {p:?}"),
        }
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message("URL"))
    }
}

/// `http://` or `https://` and the text after it; no scheme (`None`) when
/// the text has no `://`. The scheme is matched as the configuration
/// documents it, in lower case.
pub fn split_scheme(url: &str) -> Result<(Option<Scheme>, &str), UrlError> {
    if let Some(rest) = url.strip_prefix("http://") {
        Ok((Some(Scheme::Http), rest))
    } else if let Some(rest) = url.strip_prefix("https://") {
        Ok((Some(Scheme::Https), rest))
    } else if url.contains("://") {
        Err(UrlError::Scheme)
    } else {
        Ok((None, url))
    }
}

/// Host and port of an authority (`host`, `host:port`, `[v6]:port`).
pub fn split_authority(authority: &str) -> Result<(&str, Option<u16>), UrlError> {
    if authority.contains('@') {
        return Err(UrlError::Credentials);
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or(UrlError::UnclosedIpv6)?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| UrlError::Port(p.to_owned()))
        })
        .transpose()?;
    Ok((host, port))
}

/// `http://host[:port][/base]`, parsed once at start: the plaintext local
/// API the HTTP client speaks to.
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
        let http_only = || {
            format!(
                "{url:?} must start with http:// (a local plaintext API; https is not supported)"
            )
        };
        let u = parse(url).map_err(|e| match e {
            UrlError::Scheme => http_only(),
            e => e.message(url),
        })?;
        if u.scheme != Some(Scheme::Http) {
            return Err(http_only());
        }
        if u.rest.contains(['?', '#']) {
            return Err(format!("{url:?}: a query or fragment is not supported"));
        }
        let (host, port) = u.host_port_or_default().map_err(|e| e.message(url))?;
        Ok(HttpUrl {
            authority: u.authority.to_owned(),
            host: host.to_owned(),
            port: port.unwrap_or(Scheme::Http.default_port()),
            base: u.rest.trim_end_matches('/').to_owned(),
        })
    }
}

/// Splits a URL (or a bare `host:port`) into scheme, authority and the
/// rest; checks the characters first, then the scheme.
pub fn parse(url: &str) -> Result<Url<'_>, UrlError> {
    if let Some(c) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::Char(c));
    }
    let (scheme, after) = split_scheme(url)?;
    let (authority, rest) = match after.find(['/', '?', '#']) {
        Some(i) => after.split_at(i),
        None => (after, ""),
    };
    Ok(Url {
        scheme,
        authority,
        rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (Option<Scheme>, &str, Option<u16>, Option<u16>, &str) {
        let u = parse(url).unwrap();
        let (host, port) = u.host_port().unwrap();
        let (_, port_or_default) = u.host_port_or_default().unwrap();
        (u.scheme, host, port, port_or_default, u.rest)
    }

    fn e(url: &str) -> UrlError {
        match parse(url) {
            Ok(u) => u.host_port().unwrap_err(),
            Err(e) => e,
        }
    }

    #[test]
    fn schemes_hosts_ports_and_paths() {
        use Scheme::{Http, Https};
        assert_eq!(
            parts("http://localhost:11434"),
            (Some(Http), "localhost", Some(11434), Some(11434), "")
        );
        assert_eq!(
            parts("https://collector.example:4318/v1/metrics"),
            (
                Some(Https),
                "collector.example",
                Some(4318),
                Some(4318),
                "/v1/metrics"
            )
        );
        // Default ports: the scheme's when none is written.
        assert_eq!(
            parts("http://gpu-box"),
            (Some(Http), "gpu-box", None, Some(80), "")
        );
        assert_eq!(
            parts("https://x/"),
            (Some(Https), "x", None, Some(443), "/")
        );
        // A bare authority (gRPC's host:port) has no scheme, so no default.
        assert_eq!(
            parts("localhost:4317"),
            (None, "localhost", Some(4317), Some(4317), "")
        );
        assert_eq!(parts("localhost"), (None, "localhost", None, None, ""));
        // IPv6 in brackets; the authority keeps them for the Host header.
        let u = parse("http://[::1]:4317/ollama/").unwrap();
        assert_eq!((u.authority, u.rest), ("[::1]:4317", "/ollama/"));
        assert_eq!(parts("http://[::1]:4317/ollama/").1, "::1");
        assert_eq!(
            parts("[::1]:4317"),
            (None, "::1", Some(4317), Some(4317), "")
        );
        assert_eq!(
            parts("http://[fe80::1]"),
            (Some(Http), "fe80::1", None, Some(80), "")
        );
        // Query and fragment end the authority too.
        assert_eq!(parts("http://x:1?q").4, "?q");
        assert_eq!(parts("http://x#f").2, None);
        assert_eq!(parts("http://x:8/a/b").4, "/a/b");
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        assert_eq!(e("ftp://x"), UrlError::Scheme);
        assert_eq!(e("HTTP://x"), UrlError::Scheme, "lower case, as documented");
        assert_eq!(e("http://:1"), UrlError::NoHost);
        assert_eq!(e("http://"), UrlError::NoHost);
        assert_eq!(e("http://x:0"), UrlError::Port("0".into()));
        assert_eq!(e("http://x:y"), UrlError::Port("y".into()));
        assert_eq!(e("http://x:65536"), UrlError::Port("65536".into()));
        assert_eq!(e("http://[::1:80"), UrlError::UnclosedIpv6);
        assert_eq!(e("http://u:p@x:1"), UrlError::Credentials);
        assert_eq!(e("http://local host:1"), UrlError::Char(' '));
        assert_eq!(e("http://x:1/a\r\nEvil: 1"), UrlError::Char('\r'));
        assert_eq!(e("http://x\0:1"), UrlError::Char('\0'));
        // Characters are checked before anything else, the scheme before
        // the authority.
        assert_eq!(e("ftp://a b"), UrlError::Char(' '));
        assert_eq!(parse("ftp://u@x:0"), Err(UrlError::Scheme));
        assert!(
            parse("http://u@x:0/?q").is_ok(),
            "the authority is judged on demand"
        );
        assert_eq!(
            UrlError::Port("y".into()).message("http://x:y"),
            "\"http://x:y\" has an invalid port \"y\""
        );
        assert!(
            !UrlError::Credentials
                .message("http://u:secret@x")
                .contains("secret")
        );
    }
}
