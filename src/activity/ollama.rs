//! The Ollama probe: every request to a model refreshes its keep-alive, so
//! `/api/ps`'s `expires_at` changes (docs/FORMATS.md, Ollama); a model
//! that appears was loaded by a request. Each such change between two
//! cycles counts one inference: several requests to one model within one
//! interval count once (a lower bound). Any change counts, not only a later time: a request
//! with a shorter `keep_alive` moves the expiry earlier. A model unloading
//! is its keep-alive running out, not activity.

use std::collections::HashMap;

use super::{Activity, Kind, Probe};
use crate::config::ServiceConfig;
use crate::families::models::OllamaStats;

/// The service Ollama's activity belongs to: the one whose ports include
/// `ollama.url`'s port, else the one named `ollama`.
pub fn target_service(services: &[ServiceConfig], ollama_url: &str) -> Option<String> {
    let port = crate::url::parse(ollama_url)
        .ok()
        .filter(|u| u.scheme == Some(crate::url::Scheme::Http))
        .and_then(|u| u.host_port_or_default().ok())
        .and_then(|(_, p)| p);
    services
        .iter()
        .find(|s| port.is_some_and(|p| s.port == Some(p) || s.ports.contains(&p)))
        .or_else(|| services.iter().find(|s| s.name == "ollama"))
        .map(|s| s.name.clone())
}

/// Models and their `expires_at`, as last seen.
pub type Seen = HashMap<String, Option<String>>;

pub fn seen(stats: &OllamaStats) -> Seen {
    stats
        .models
        .iter()
        .map(|m| (m.name.clone(), m.expires_at.clone()))
        .collect()
}

/// Inferences between two `/api/ps` answers.
pub fn inferences(prev: &Seen, now: &Seen) -> u64 {
    now.iter()
        .filter(|(name, exp)| prev.get(*name).is_none_or(|p| p != *exp))
        .count() as u64
}

pub struct OllamaProbe {
    service: String,
    prev: Option<Seen>,
    activity: Activity,
}

impl OllamaProbe {
    /// `None` when no configured service stands for Ollama.
    pub fn new(services: &[ServiceConfig], ollama_url: &str, activity: Activity) -> Option<Self> {
        Some(OllamaProbe {
            service: target_service(services, ollama_url)?,
            prev: None,
            activity,
        })
    }

    /// Compares with the previous answer; a cycle where Ollama did not
    /// answer keeps the previous one as the baseline.
    pub fn observe(&mut self, stats: Option<&OllamaStats>) {
        let Some(stats) = stats else { return };
        let now = seen(stats);
        if let Some(prev) = &self.prev {
            let n = inferences(prev, &now);
            if n > 0 {
                let _ = self
                    .activity
                    .record(&self.service, Kind::Inference, n, Probe::Ollama);
            }
        }
        self.prev = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(models: &[(&str, Option<&str>)]) -> Seen {
        models
            .iter()
            .map(|(n, e)| (n.to_string(), e.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn expiry_changes_and_loads_count_unloads_do_not() {
        let a = s(&[("llama3:8b", Some("2024-06-04T14:38:31.83753-07:00"))]);
        assert_eq!(inferences(&a, &a), 0);
        let later = s(&[("llama3:8b", Some("2024-06-04T14:39:02.1-07:00"))]);
        assert_eq!(inferences(&a, &later), 1);
        let two = s(&[
            ("llama3:8b", Some("2024-06-04T14:38:31.83753-07:00")),
            ("mistral:latest", Some("2024-06-04T14:40:00-07:00")),
        ]);
        assert_eq!(inferences(&a, &two), 1, "a model loaded");
        assert_eq!(inferences(&two, &a), 0, "a model unloaded");
        assert_eq!(inferences(&s(&[]), &two), 2);
    }

    #[test]
    fn target_by_port_then_by_name() {
        let mut cfg = crate::config::Config::default();
        let target =
            |c: &crate::config::Config| target_service(&c.effective_services(), &c.ollama.url);
        assert_eq!(target(&cfg).as_deref(), Some("ollama"));
        cfg.ollama.url = "http://127.0.0.1:11402".into();
        assert_eq!(target(&cfg).as_deref(), Some("piper"));
        cfg.default_services = false;
        assert_eq!(target(&cfg), None);
    }
}
