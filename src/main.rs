//! Command line of unamentis-agent.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use unamentis_agent::activity::Activity;
use unamentis_agent::config::{self, ConfigError, Flags, Loaded, LogFormat};
use unamentis_agent::families::agent::ExportCounters;
use unamentis_agent::pipeline::Pipeline;
use unamentis_agent::server::{self, point_json};
use unamentis_agent::snapshot::{CycleSampler, Point, Sampler};
use unamentis_agent::{doctor, telemetry};

/// How long after start the first cycle runs: long enough for a CPU
/// percentage over a meaningful window, well inside the 1 s budget.
const FIRST_EXPORT_AFTER: Duration = Duration::from_millis(250);

#[derive(Parser)]
#[command(
    name = "unamentis-agent",
    version,
    about = "OpenTelemetry host agent for a local AI server stack",
    long_about = "Watches the host (CPU, memory; later GPU, power, thermal) and the services of a local AI \
stack, and pushes the metrics over OTLP to an OpenTelemetry Collector or SigNoz.\n\n\
Configuration comes from built-in defaults, then a TOML file (--config or UNAMENTIS_AGENT_CONFIG), \
then environment variables (the standard OTEL_* ones, then UNAMENTIS_AGENT_*), then these flags; \
`check-config` shows the result and where each value came from."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// TOML config file [env: UNAMENTIS_AGENT_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Sampling and export interval, e.g. 5s, 500ms [key: interval]
    #[arg(long, global = true, value_name = "DURATION")]
    interval: Option<String>,
    /// OTLP endpoint, e.g. http://localhost:4317 [key: export.endpoint]
    #[arg(long, global = true, value_name = "URL")]
    endpoint: Option<String>,
    /// OTLP protocol: grpc or http/protobuf [key: export.protocol]
    #[arg(long, global = true, value_name = "PROTOCOL")]
    protocol: Option<String>,
    /// Log filter, e.g. info, debug, warn,unamentis_agent=debug; RUST_LOG wins [key: log.level]
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    /// Log format: text or json [key: log.format]
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Local HTTP server address [key: server.listen]
    #[arg(long, global = true, value_name = "ADDR")]
    listen: Option<String>,
    /// Host procfs, e.g. /host/proc in a container [key: host.proc]
    #[arg(long, global = true, value_name = "DIR")]
    host_proc: Option<String>,
    /// Host sysfs, e.g. /host/sys in a container [key: host.sys]
    #[arg(long, global = true, value_name = "DIR")]
    host_sys: Option<String>,
    /// Host root filesystem, e.g. /host [key: host.root]
    #[arg(long, global = true, value_name = "DIR")]
    host_root: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: sample every interval and push metrics over OTLP until SIGINT/SIGTERM,
    /// then flush the last data and exit.
    Run,
    /// Sample the host once and print every metric (name, value, unit, attributes), then exit.
    /// Needs no collector.
    Snapshot {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Time between the baseline and the sample that CPU percentages cover.
        #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
        window: Duration,
    },
    /// Validate the configuration and print the effective value of every key with where it came
    /// from. Exit code 2 when it is invalid.
    CheckConfig,
    /// Match the configured services now and explain each: its matchers, the processes found
    /// (pids, CPU, RSS), or why nothing matched (e.g. nothing listens on its port).
    Services {
        /// Time between the two samples that CPU percentages cover.
        #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
        window: Duration,
    },
    /// Say for every source whether it is available on this host, why not, and how to fix it
    /// (e.g. RAPL needs root). Always exits 0.
    Doctor {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Time between the two samples taken.
        #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
        window: Duration,
    },
}

impl Cli {
    fn flags(&self) -> Flags {
        let pairs = [
            ("--interval", &self.interval),
            ("--endpoint", &self.endpoint),
            ("--protocol", &self.protocol),
            ("--log-level", &self.log_level),
            ("--log-format", &self.log_format),
            ("--listen", &self.listen),
            ("--host-proc", &self.host_proc),
            ("--host-sys", &self.host_sys),
            ("--host-root", &self.host_root),
        ];
        pairs
            .into_iter()
            .filter_map(|(f, v)| v.clone().map(|v| (f, v)))
            .collect()
    }
}

fn env_help() -> String {
    let mut s = String::from("Environment variables (lowest precedence first within a key):\n");
    for (var, key) in config::env_vars() {
        s.push_str(&format!("  {var:<42} {key}\n"));
    }
    s.push_str(
        "  RUST_LOG                                   log filter, overrides log.level\n  \
         K8S_NODE_NAME                              adds k8s.node.name to the resource\n\n\
         Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.",
    );
    s
}

fn main() -> ExitCode {
    let matches = Cli::command().after_long_help(env_help()).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let loaded = match config::load(
        cli.config.as_deref(),
        &|k| std::env::var(k).ok(),
        &cli.flags(),
    )
    .and_then(|l| unamentis_agent::families::check(&l).map(|()| l))
    {
        Ok(l) => l,
        Err(e) => return config_error(&e),
    };
    match cli.command {
        Command::CheckConfig => {
            let file = match &loaded.file {
                Some(f) => format!("file: {}", f.display()),
                None => "no config file".into(),
            };
            emit(&format!(
                "# configuration is valid; {file}\n{}",
                loaded.render()
            ))
        }
        Command::Services { window } => emit(&services_table(&loaded, window)),
        Command::Doctor { json, window } => {
            let report = doctor::check(&loaded.config, window);
            if json {
                emit(&format!("{:#}\n", doctor::json(&report)))
            } else {
                emit(&doctor::table(&report))
            }
        }
        Command::Snapshot { json, window } => {
            init_logging(&loaded);
            snapshot(&loaded, json, window)
        }
        Command::Run => {
            init_logging(&loaded);
            match run(&loaded) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Writes command output; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unamentis-agent: cannot write output: {e}");
            ExitCode::from(1)
        }
    }
}

fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("unamentis-agent: configuration error: {e}");
    ExitCode::from(2)
}

fn init_logging(loaded: &Loaded) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&loaded.config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match loaded.config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn resource_attributes(loaded: &Loaded) -> Vec<(String, String)> {
    let host = loaded.config.host_paths().identity();
    telemetry::resource_attributes(&loaded.config, &host, std::env::var("K8S_NODE_NAME").ok())
}

/// Matches the services now and explains each: its matchers, the
/// processes found and what they use, or why nothing matched.
fn services_table(loaded: &Loaded, window: Duration) -> String {
    use unamentis_agent::families::services::{Matcher, ServiceSource, ServicesSample, Wording};
    use unamentis_agent::sources::Source;
    let mut source = ServiceSource::new(
        &loaded.config.services_section(),
        loaded.config.host_paths(),
    );
    std::thread::sleep(window);
    let mut snap = unamentis_agent::snapshot::Snapshot::default();
    if let Err(e) = source.sample(&mut snap) {
        return format!("cannot list processes: {e}\n");
    }
    let samples = snap
        .take::<ServicesSample>()
        .map(|s| s.services)
        .unwrap_or_default();
    let mut out = String::new();
    for (cfg, s) in loaded.config.effective_services().iter().zip(&samples) {
        let how = Matcher::from_config(cfg).describe(Wording::Config);
        let by_cgroup = cfg.systemd_unit.is_some() || cfg.cgroup.is_some();
        out.push_str(&format!("{}: {}\n", s.name, how.join(" and ")));
        if s.up() {
            let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
            let pids: Vec<String> = s.pids.iter().map(u32::to_string).collect();
            if by_cgroup {
                // Which cgroup, hierarchy, counter and memory formula.
                let mut lines = s.matched.iter();
                out.push_str(&format!("  up: {}\n", lines.next().map_or("", |l| l)));
                for l in lines {
                    out.push_str(&format!("  {l}\n"));
                }
            } else {
                out.push_str(&format!("  up: matched {}\n", s.matched.join(", ")));
            }
            out.push_str(&format!(
                "  processes: {} ({})\n",
                s.pids.len(),
                pids.join(" ")
            ));
            out.push_str(&format!(
                "  cpu: {}  rss: {}  threads: {}  open files: {}\n",
                s.cpu_percent.map_or("-".into(), |c| format!("{c:.1} %")),
                s.rss_bytes
                    .map_or("-".into(), |b| format!("{:.1} MiB", mib(b))),
                s.threads.map_or("-".into(), |t| t.to_string()),
                s.open_files
                    .map_or("- (not readable)".into(), |n| n.to_string()),
            ));
            if !by_cgroup {
                // Since this command started: the window's bytes.
                out.push_str(&match (&s.disk_io, &s.disk_io_note) {
                    (Some(io), _) => format!(
                        "  disk read: {:.1} MiB  written: {:.1} MiB (in the {window:?} window)\n",
                        mib(io.read_bytes),
                        mib(io.write_bytes)
                    ),
                    (None, Some(why)) => format!("  disk I/O: - ({why})\n"),
                    (None, None) => "  disk I/O: -\n".into(),
                });
            }
        } else {
            let why = s
                .note
                .clone()
                .unwrap_or_else(|| "no process matched".into());
            out.push_str(&format!("  down: {why}\n"));
        }
    }
    out.push_str(
        "\nAll matchers of a service must hold; a service is its matching processes and all their \
         descendants; a process two services match belongs to the first. A systemd_unit or cgroup \
         service is every process in its cgroup (and the cgroups below), measured by the cgroup's \
         own counters.\n",
    );
    out
}

fn snapshot(loaded: &Loaded, json: bool, window: Duration) -> ExitCode {
    let activity = Activity::from_config(&loaded.config);
    let mut sampler = Sampler::new(
        Pipeline::new(&loaded.config)
            .with_activity(&activity)
            .build(),
    );
    std::thread::sleep(window);
    let points = sampler.sample().points_with(loaded.config.compat);
    if json {
        let out = serde_json::json!({
            "resource": resource_attributes(loaded).into_iter().collect::<std::collections::BTreeMap<_, _>>(),
            "metrics": points.iter().map(point_json).collect::<Vec<_>>(),
        });
        emit(&format!("{out:#}\n"))
    } else {
        emit(&points_table(&points))
    }
}

fn points_table(points: &[Point]) -> String {
    let rows: Vec<[String; 4]> = points
        .iter()
        .map(|p| {
            let attrs: Vec<String> = p.attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            [
                p.metric.name.to_owned(),
                format!("{:.2}", p.value),
                p.metric.unit.to_owned(),
                attrs.join(" "),
            ]
        })
        .collect();
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r[2].len()).max().unwrap_or(0);
    let mut out = format!(
        "{:<w0$}  {:>w1$}  {:<w2$}  attributes\n",
        "metric", "value", "unit"
    );
    for [name, value, unit, attrs] in rows {
        out.push_str(&format!(
            "{name:<w0$}  {value:>w1$}  {unit:<w2$}  {attrs}\n"
        ));
    }
    out
}

fn run(loaded: &Loaded) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // spawn_blocking threads (flush, shutdown) leave soon after use.
        .thread_keep_alive(Duration::from_secs(1))
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(run_async(loaded))
}

async fn run_async(loaded: &Loaded) -> Result<(), String> {
    let cfg = &loaded.config;
    let activity = Activity::from_config(cfg);
    let counters = ExportCounters::default();
    // Building the sources primes baselines (CPU times) for the first cycle.
    let mut pipeline = Pipeline::new(cfg).with_activity(&activity);
    if cfg.export.enabled {
        pipeline = pipeline.with_export_stats(counters.clone());
    }
    let srcs = pipeline.build();
    let cycle = CycleSampler::new(Sampler::new(srcs)).with_compat(cfg.compat);
    let resource = resource_attributes(loaded);
    let state = server::ServerState {
        cycle: cycle.clone(),
        activity,
        token: cfg.server.token.clone(),
        push: cfg.activity.push,
        resource: resource.iter().cloned().collect(),
    };
    server::spawn(&cfg.server.listen, std::sync::Arc::new(state)).await;

    let push = if cfg.export.enabled {
        let exporter = telemetry::build_exporter(&cfg.export, counters)?;
        tracing::info!(
            endpoint = %cfg.export.effective_endpoint(),
            protocol = ?cfg.export.protocol,
            interval = %humantime::format_duration(cfg.interval.0),
            "agent started"
        );
        Some(telemetry::Push::new(
            exporter,
            resource,
            cfg.export.descriptions,
        ))
    } else {
        // Still sample every interval, for the idle clock and the local
        // server.
        tracing::warn!(
            "export disabled (OTEL_SDK_DISABLED or export.enabled = false): nothing will be sent"
        );
        None
    };
    let exporting = push.is_some();
    let schedule = telemetry::Schedule {
        first: FIRST_EXPORT_AFTER,
        every: cfg.interval.0,
    };
    let cycles = telemetry::Cycles::start(cycle, push, schedule)
        .map_err(|e| format!("cannot start the cycle thread: {e}"))?;

    let sig = wait_for_signal().await?;
    if !exporting {
        tracing::info!("{sig}: exiting");
        return Ok(());
    }
    tracing::info!("{sig}: flushing the last data and shutting down");
    // The final delivery waits on the sender task, which needs this
    // runtime: stop off the runtime thread. A loss is already logged.
    tokio::task::spawn_blocking(move || cycles.stop())
        .await
        .map_err(|e| format!("shutdown task: {e}"))?
        .ok();
    Ok(())
}

async fn wait_for_signal() -> Result<&'static str, String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| format!("Ctrl-C handler: {e}"))?;
        Ok("Ctrl-C")
    }
}
