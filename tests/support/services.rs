//! The services source of a configuration, built as the pipeline builds it
//! (its section and the configuration's host paths).

use unamentis_agent::config::Config;
use unamentis_agent::families::services::ServiceSource;

pub fn service_source(cfg: &Config) -> ServiceSource {
    ServiceSource::new(&cfg.services_section(), cfg.host_paths())
}
