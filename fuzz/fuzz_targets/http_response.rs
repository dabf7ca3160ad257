//! Fuzzes the local HTTP client's response framing (status line, Content-Length, chunked bodies) and the URL parser (`ollama.url`, export endpoints): any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::sources::http_get;

fuzz_target!(|data: &[u8]| {
    // The client parses what it has after every read.
    for end in [data.len() / 2, data.len()] {
        let _ = http_get::parse_response(&data[..end]);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = http_get::HttpUrl::parse(text);
        // Every URL of the configuration goes through the same parser.
        if let Ok(u) = unamentis_agent::url::parse(text) {
            let _ = u.host_port_or_default();
        }
    }
});
