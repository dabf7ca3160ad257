//! Fuzzes environment variables (OTEL_* and UNAMENTIS_AGENT_*: milliseconds, booleans, percent-encoded k=v lists) through the whole load: any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::config;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the variable, the rest is its value.
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(value) = std::str::from_utf8(rest) else {
        return;
    };
    let vars: Vec<&str> = config::env_vars().map(|(v, _)| v).collect();
    let var = vars[usize::from(pick) % vars.len()];
    // Not the config file path: that would read a file.
    if var == config::CONFIG_ENV {
        return;
    }
    let _ = config::parse_pairs(value);
    let _ = config::load_text(None, &|k| (k == var).then(|| value.to_owned()), &Vec::new());
});
