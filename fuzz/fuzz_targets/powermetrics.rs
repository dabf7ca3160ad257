//! Fuzzes the powermetrics plist stream: split into documents at any read boundary, then parsed: any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::families::macos;

fuzz_target!(|data: &[u8]| {
    // The first byte picks where the stream is cut into reads.
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let mut stream = macos::powermetrics::PlistStream::default();
    let at = usize::from(cut).min(rest.len());
    let mut docs = stream.push(&rest[..at]);
    docs.extend(stream.push(&rest[at..]));
    for doc in docs {
        let _ = macos::powermetrics::parse_document(&doc);
    }
    let _ = macos::powermetrics::parse_document(rest);
});
