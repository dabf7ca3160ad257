// @generated from semconv/registry.yaml by `UPDATE_SEMCONV=1 cargo test --test semconv`.
// Do not edit: change the registry and regenerate.

//! Names, units and descriptions of every metric and attribute the agent
//! emits (the public catalogue).

/// Every instrument is observable: gauges are sampled values, counters
/// are cumulative totals that never go backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instrument {
    Gauge,
    Counter,
    /// A non-monotonic cumulative sum (a level that can go down).
    UpDownCounter,
}

/// The value type of a metric's points on the wire. Values are
/// computed as `f64`; an `Int` metric's are whole numbers, sent as
/// integers (the hostmetrics receiver's byte and count sums are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Double,
    Int,
}

#[derive(Debug)]
pub struct Metric {
    pub name: &'static str,
    pub instrument: Instrument,
    pub unit: &'static str,
    pub value_type: ValueType,
    pub brief: &'static str,
    /// Attribute keys a point of this metric may carry.
    pub attributes: &'static [&'static str],
}

/// Attribute keys.
pub mod attr {
    /// Averaging period of a load average: one of 1m, 5m, 15m.
    pub const PERIOD: &str = "period";
    /// Which CPU core count: logical (online logical CPUs), physical (distinct physical cores), or available (physical cores not taken by the 1-minute load).
    pub const KIND: &str = "kind";
    /// Zero-based index of the GPU in the enumeration order of its source (NVML / nvidia-smi index, amdgpu card order, IOAccelerator order).
    pub const GPU_INDEX: &str = "gpu.index";
    /// Product name of the GPU as reported by its driver.
    pub const GPU_NAME: &str = "gpu.name";
    /// GPU vendor: nvidia, amd, apple, or ollama-estimate when no GPU telemetry is readable and the value is estimated from Ollama's /api/ps (size_vram of the loaded models).
    pub const GPU_VENDOR: &str = "gpu.vendor";
    /// Stable unique identifier of the GPU where the driver provides one (NVIDIA GPU-/MIG- UUID, amdgpu unique_id).
    pub const GPU_UUID: &str = "gpu.uuid";
    /// PCI address of the GPU, normalised to the sysfs form (4-hex-digit domain, lower-case hex).
    pub const GPU_PCI_BUS_ID: &str = "gpu.pci_bus_id";
    /// Power domain of an energy counter: one of cpu, gpu, package, dram, battery.
    pub const DOMAIN: &str = "domain";
    /// Identifier of a fan: on Linux the hwmon chip name and the fan's label or channel (e.g. nct6775.fan2), on Intel Macs smc.
    pub const FAN: &str = "fan";
    /// Name of the monitored service (from the built-in catalogue or the config file), or the pseudo-service other (host minus the named services).
    pub const UNAMENTIS_SERVICE: &str = "unamentis.service";
    /// Executable name of a process (the comm name from /proc/<pid>/stat on Linux).
    pub const PROCESS_EXECUTABLE_NAME: &str = "process.executable.name";
    /// Process identifier in the host PID namespace.
    pub const PROCESS_PID: &str = "process.pid";
    /// Container the process runs in (Docker, containerd/CRI, CRI-O, Podman), the runtime's 64-hex id from the process's cgroup path in /proc/<pid>/cgroup; on a service point only when all its processes share that container.
    pub const CONTAINER_ID: &str = "container.id";
    /// UID of the Kubernetes pod the process runs in, from its kubepods cgroup slice; on a service point only when all its processes share that pod. A point attribute: the resource's k8s.pod.uid, when set, is the agent's own pod.
    pub const K8S_POD_UID: &str = "k8s.pod.uid";
    /// Name of a model loaded in Ollama, as reported by /api/ps (name:tag).
    pub const MODEL: &str = "model";
    /// Activity probe that observed the activity: push (reported by the service to the agent's /v1/activity), connections (TCP connections on the service's ports), or ollama (Ollama's /api/ps).
    pub const PROBE: &str = "probe";
    /// Name of an agent source (what its Source::name() returns), e.g. cpu, memory, process, service, rapl, hwmon, battery, nvml, nvidia-smi, amdgpu, apple-gpu, powermetrics, thermal, ollama, connections (the activity probe), idle (idle clock and accounting).
    pub const SOURCE: &str = "source";
    /// Resource tasks stalled on: cpu, memory or io (the file of /proc/pressure).
    pub const RESOURCE: &str = "resource";
    /// Which stall: some (at least one task stalled) or full (all non-idle tasks stalled at once).
    pub const STALL: &str = "stall";
    /// Logical CPU of a system.cpu.time or system.cpu.frequency point, as cpu<N>: the cpu<N> line of /proc/stat, the cpu<N> directory of sysfs, processor N of /proc/cpuinfo (Linux); the processor's index (macOS).
    pub const CPU: &str = "cpu";
    /// Breakdown of a hostmetrics metric: for system.cpu.time user, nice, system, idle, wait, interrupt, softirq, steal; for system.memory.usage used, free, buffered, cached, slab_reclaimable, slab_unreclaimable (Linux), used, free, inactive (macOS); for system.filesystem.usage used, free, reserved; for system.filesystem.inodes.usage used, free; for system.paging.usage used, free; for system.network.connections the TCP state (ESTABLISHED, LISTEN, TIME_WAIT, ...).
    pub const STATE: &str = "state";
    /// Device of a mounted filesystem (system.filesystem.*: the mount source of /proc/<pid>/mountinfo, with /dev/mapper/<name> and /dev/root named by the block device they stand for, /dev/dm-1, /dev/vda1, as the hostmetrics receiver names them), a block device (system.disk.*, its /proc/diskstats name), a network interface (system.network.*) or a swap area (system.paging.usage, its /proc/swaps name).
    pub const DEVICE: &str = "device";
    /// Mount mode of a filesystem from its mount options: rw, ro, or unknown when the options name neither.
    pub const MODE: &str = "mode";
    /// Mount point of a filesystem as the host sees it.
    pub const MOUNTPOINT: &str = "mountpoint";
    /// Filesystem type of a mount; for system.paging.operations and system.paging.faults major or minor.
    pub const TYPE: &str = "type";
    /// Direction of a transfer: read (from storage) or write (to storage) for system.disk.* and service.disk_io_bytes, receive or transmit (system.network.*), page_in or page_out (system.paging.operations).
    pub const DIRECTION: &str = "direction";
    /// Transport protocol of system.network.connections: tcp.
    pub const PROTOCOL: &str = "protocol";
    /// Scheduling state of system.processes.count: running (runnable) or blocked (waiting for I/O).
    pub const STATUS: &str = "status";
    /// Identifier of a hardware component, unique on the host: cpu, package, dram, ane, battery, memory, or gpu<index> for a GPU.
    pub const HW_ID: &str = "hw.id";
    /// Type of the hardware component (hw.* conventions): cpu, gpu, memory, battery, or temperature for a temperature sensor.
    pub const HW_TYPE: &str = "hw.type";
}

pub static CPU_PERCENT: Metric = Metric {
    name: "unamentis.server.cpu.percent",
    instrument: Instrument::Gauge,
    unit: "%",
    value_type: ValueType::Double,
    brief: "Busy share of all logical CPUs of the host over the last collection interval, as a percentage from 0 to 100.",
    attributes: &[],
};

pub static CPU_LOAD_AVERAGE: Metric = Metric {
    name: "unamentis.server.cpu.load_average",
    instrument: Instrument::Gauge,
    unit: "{load}",
    value_type: ValueType::Double,
    brief: "System load average (runnable plus uninterruptible tasks) over the period given by the period attribute, in tasks.",
    attributes: &[attr::PERIOD],
};

pub static CPU_CORES: Metric = Metric {
    name: "unamentis.server.cpu.cores",
    instrument: Instrument::Gauge,
    unit: "{core}",
    value_type: ValueType::Double,
    brief: "Number of CPU cores of the kind given by the kind attribute: logical CPUs online, physical cores, or cores available = max(1, physical - 1-minute load average).",
    attributes: &[attr::KIND],
};

pub static MEMORY_USED_MB: Metric = Metric {
    name: "unamentis.server.memory.used_mb",
    instrument: Instrument::Gauge,
    unit: "MiBy",
    value_type: ValueType::Double,
    brief: "Host memory in use, computed as MemTotal - MemAvailable, in mebibytes.",
    attributes: &[],
};

pub static MEMORY_AVAILABLE_MB: Metric = Metric {
    name: "unamentis.server.memory.available_mb",
    instrument: Instrument::Gauge,
    unit: "MiBy",
    value_type: ValueType::Double,
    brief: "Host memory available for new workloads without swapping (MemAvailable), in mebibytes.",
    attributes: &[],
};

pub static MEMORY_TOTAL_MB: Metric = Metric {
    name: "unamentis.server.memory.total_mb",
    instrument: Instrument::Gauge,
    unit: "MiBy",
    value_type: ValueType::Double,
    brief: "Total usable host memory (MemTotal), in mebibytes.",
    attributes: &[],
};

pub static MEMORY_PERCENT: Metric = Metric {
    name: "unamentis.server.memory.percent",
    instrument: Instrument::Gauge,
    unit: "%",
    value_type: ValueType::Double,
    brief: "Share of host memory in use, computed as used / total * 100 with used = MemTotal - MemAvailable, as a percentage from 0 to 100.",
    attributes: &[],
};

pub static GPU_VRAM_USED_MB: Metric = Metric {
    name: "unamentis.server.gpu.vram_used_mb",
    instrument: Instrument::Gauge,
    unit: "MiBy",
    value_type: ValueType::Double,
    brief: "GPU memory currently in use on one GPU, in mebibytes.",
    attributes: &[attr::GPU_INDEX, attr::GPU_NAME, attr::GPU_VENDOR, attr::GPU_UUID, attr::GPU_PCI_BUS_ID],
};

pub static GPU_VRAM_TOTAL_MB: Metric = Metric {
    name: "unamentis.server.gpu.vram_total_mb",
    instrument: Instrument::Gauge,
    unit: "MiBy",
    value_type: ValueType::Double,
    brief: "Total GPU memory of one GPU, in mebibytes.",
    attributes: &[attr::GPU_INDEX, attr::GPU_NAME, attr::GPU_VENDOR, attr::GPU_UUID, attr::GPU_PCI_BUS_ID],
};

pub static GPU_UTILIZATION_PERCENT: Metric = Metric {
    name: "unamentis.server.gpu.utilization_percent",
    instrument: Instrument::Gauge,
    unit: "%",
    value_type: ValueType::Double,
    brief: "Busy share of one GPU as reported by its driver, as a percentage from 0 to 100.",
    attributes: &[attr::GPU_INDEX, attr::GPU_NAME, attr::GPU_VENDOR, attr::GPU_UUID, attr::GPU_PCI_BUS_ID],
};

pub static GPU_TEMPERATURE: Metric = Metric {
    name: "unamentis.server.gpu.temperature",
    instrument: Instrument::Gauge,
    unit: "Cel",
    value_type: ValueType::Double,
    brief: "Temperature of one GPU die, in degrees Celsius.",
    attributes: &[attr::GPU_INDEX, attr::GPU_NAME, attr::GPU_VENDOR, attr::GPU_UUID, attr::GPU_PCI_BUS_ID],
};

pub static POWER_CPU_WATTS: Metric = Metric {
    name: "unamentis.server.power.cpu_watts",
    instrument: Instrument::Gauge,
    unit: "W",
    value_type: ValueType::Double,
    brief: "Average power drawn by the CPU cores over the last collection interval, in watts.",
    attributes: &[],
};

pub static POWER_GPU_WATTS: Metric = Metric {
    name: "unamentis.server.power.gpu_watts",
    instrument: Instrument::Gauge,
    unit: "W",
    value_type: ValueType::Double,
    brief: "Average power drawn by a GPU over the last collection interval, in watts; carries the gpu.* attributes where power is read per device.",
    attributes: &[attr::GPU_INDEX, attr::GPU_NAME, attr::GPU_VENDOR, attr::GPU_UUID, attr::GPU_PCI_BUS_ID],
};

pub static POWER_PACKAGE_WATTS: Metric = Metric {
    name: "unamentis.server.power.package_watts",
    instrument: Instrument::Gauge,
    unit: "W",
    value_type: ValueType::Double,
    brief: "Average power drawn by the whole processor package (cores, uncore, integrated GPU) over the last collection interval, in watts.",
    attributes: &[],
};

pub static POWER_DRAM_WATTS: Metric = Metric {
    name: "unamentis.server.power.dram_watts",
    instrument: Instrument::Gauge,
    unit: "W",
    value_type: ValueType::Double,
    brief: "Average power drawn by DRAM over the last collection interval, from the RAPL dram zones, in watts.",
    attributes: &[],
};

pub static POWER_ANE_WATTS: Metric = Metric {
    name: "unamentis.server.power.ane_watts",
    instrument: Instrument::Gauge,
    unit: "W",
    value_type: ValueType::Double,
    brief: "Average power drawn by the Apple Neural Engine over the last collection interval, from powermetrics ane_power, in watts.",
    attributes: &[],
};

pub static POWER_BATTERY_WATTS: Metric = Metric {
    name: "unamentis.server.power.battery_watts",
    instrument: Instrument::Gauge,
    unit: "W",
    value_type: ValueType::Double,
    brief: "Rate at which the system battery is discharging, in watts; 0 while the battery is charging or full.",
    attributes: &[],
};

pub static BATTERY_CHARGE_PERCENT: Metric = Metric {
    name: "unamentis.server.battery.charge_percent",
    instrument: Instrument::Gauge,
    unit: "%",
    value_type: ValueType::Double,
    brief: "Charge of the system batteries together, as a percentage of their full capacity.",
    attributes: &[],
};

pub static BATTERY_TIME_LEFT: Metric = Metric {
    name: "unamentis.server.battery.time_left",
    instrument: Instrument::Gauge,
    unit: "s",
    value_type: ValueType::Double,
    brief: "Time until the system batteries are empty at the current discharge rate, in seconds; only while discharging.",
    attributes: &[],
};

pub static POWER_AC_ONLINE: Metric = Metric {
    name: "unamentis.server.power.ac_online",
    instrument: Instrument::Gauge,
    unit: "1",
    value_type: ValueType::Double,
    brief: "1 while the host runs on external power (AC, USB or wireless charger), 0 on battery.",
    attributes: &[],
};

pub static ENERGY_JOULES: Metric = Metric {
    name: "unamentis.server.energy.joules",
    instrument: Instrument::Counter,
    unit: "J",
    value_type: ValueType::Double,
    brief: "Cumulative energy consumed by a power domain since the agent started, in joules; never goes backwards.",
    attributes: &[attr::DOMAIN],
};

pub static THERMAL_TEMPERATURE: Metric = Metric {
    name: "unamentis.server.thermal.temperature",
    instrument: Instrument::Gauge,
    unit: "Cel",
    value_type: ValueType::Double,
    brief: "Temperature of the hottest CPU die sensor, in degrees Celsius.",
    attributes: &[],
};

pub static THERMAL_PRESSURE: Metric = Metric {
    name: "unamentis.server.thermal.pressure",
    instrument: Instrument::Gauge,
    unit: "{level}",
    value_type: ValueType::Double,
    brief: "Thermal pressure level of the host on a 0-3 scale: 0 nominal, 1 fair, 2 serious, 3 critical.",
    attributes: &[],
};

pub static THERMAL_FAN_RPM: Metric = Metric {
    name: "unamentis.server.thermal.fan_rpm",
    instrument: Instrument::Gauge,
    unit: "{rpm}",
    value_type: ValueType::Double,
    brief: "Speed of one fan, in revolutions per minute; 0 is a real reading (fan stopped).",
    attributes: &[attr::FAN],
};

pub static THERMAL_THROTTLE_EVENTS: Metric = Metric {
    name: "unamentis.server.thermal.throttle_events",
    instrument: Instrument::Counter,
    unit: "{event}",
    value_type: ValueType::Double,
    brief: "Cumulative number of CPU thermal throttling events since boot, from the Linux thermal_throttle counters, in events.",
    attributes: &[],
};

pub static SERVICE_CPU_PERCENT: Metric = Metric {
    name: "unamentis.server.service.cpu_percent",
    instrument: Instrument::Gauge,
    unit: "%",
    value_type: ValueType::Double,
    brief: "CPU used by the service's whole process tree over the last collection interval, as a percentage of one core like ps (100 = one full core; can exceed 100).",
    attributes: &[attr::UNAMENTIS_SERVICE, attr::CONTAINER_ID, attr::K8S_POD_UID],
};

pub static SERVICE_MEMORY_MB: Metric = Metric {
    name: "unamentis.server.service.memory_mb",
    instrument: Instrument::Gauge,
    unit: "MiBy",
    value_type: ValueType::Double,
    brief: "Resident set size (RSS) of the service's whole process tree, in mebibytes.",
    attributes: &[attr::UNAMENTIS_SERVICE, attr::CONTAINER_ID, attr::K8S_POD_UID],
};

pub static SERVICE_THREADS: Metric = Metric {
    name: "unamentis.server.service.threads",
    instrument: Instrument::Gauge,
    unit: "1",
    value_type: ValueType::Double,
    brief: "Number of threads in the service's whole process tree (sum of num_threads), as a count.",
    attributes: &[attr::UNAMENTIS_SERVICE, attr::CONTAINER_ID, attr::K8S_POD_UID],
};

pub static SERVICE_OPEN_FILES: Metric = Metric {
    name: "unamentis.server.service.open_files",
    instrument: Instrument::Gauge,
    unit: "1",
    value_type: ValueType::Double,
    brief: "Number of open file descriptors (files, sockets, pipes) in the service's whole process tree, as a count.",
    attributes: &[attr::UNAMENTIS_SERVICE, attr::CONTAINER_ID, attr::K8S_POD_UID],
};

pub static SERVICE_DISK_IO_BYTES: Metric = Metric {
    name: "unamentis.server.service.disk_io_bytes",
    instrument: Instrument::Counter,
    unit: "By",
    value_type: ValueType::Int,
    brief: "Cumulative bytes the service's whole process tree caused to be read from (direction=read) or written to (direction=write) storage since the agent started, in bytes.",
    attributes: &[attr::UNAMENTIS_SERVICE, attr::DIRECTION, attr::CONTAINER_ID, attr::K8S_POD_UID],
};

pub static SERVICE_PROCESSES: Metric = Metric {
    name: "unamentis.server.service.processes",
    instrument: Instrument::Gauge,
    unit: "1",
    value_type: ValueType::Double,
    brief: "Number of processes in the service's tree (matched processes and their descendants), or in its cgroup and the cgroups below, as a count.",
    attributes: &[attr::UNAMENTIS_SERVICE, attr::CONTAINER_ID, attr::K8S_POD_UID],
};

pub static SERVICE_UP: Metric = Metric {
    name: "unamentis.server.service.up",
    instrument: Instrument::Gauge,
    unit: "1",
    value_type: ValueType::Double,
    brief: "1 when at least one process matched the service in this cycle, 0 when none did.",
    attributes: &[attr::UNAMENTIS_SERVICE],
};

pub static SERVICE_MEMORY_GROWTH_MB_PER_HOUR: Metric = Metric {
    name: "unamentis.server.service.memory_growth_mb_per_hour",
    instrument: Instrument::Gauge,
    unit: "MiBy/h",
    value_type: ValueType::Double,
    brief: "Growth rate of the service's tree RSS, the least-squares slope of service.memory_mb over a sliding window, in mebibytes per hour; for leak alerts.",
    attributes: &[attr::UNAMENTIS_SERVICE, attr::CONTAINER_ID, attr::K8S_POD_UID],
};

pub static SERVICE_VRAM_MB: Metric = Metric {
    name: "unamentis.server.service.vram_mb",
    instrument: Instrument::Gauge,
    unit: "MiBy",
    value_type: ValueType::Double,
    brief: "GPU memory used by the service's process tree on all GPUs, from NVML per-process memory, in mebibytes.",
    attributes: &[attr::UNAMENTIS_SERVICE, attr::CONTAINER_ID, attr::K8S_POD_UID],
};

pub static SERVICE_POWER_WATTS: Metric = Metric {
    name: "unamentis.server.service.power_watts",
    instrument: Instrument::Gauge,
    unit: "W",
    value_type: ValueType::Double,
    brief: "ESTIMATE of the power attributable to the service, in watts, per domain: cpu = package power times the service's share of host busy CPU time over the interval; gpu = each GPU's power times the service's share of its processes' SM utilization, else of the GPU memory they hold. The services plus other equal the domain's power.",
    attributes: &[attr::UNAMENTIS_SERVICE, attr::DOMAIN],
};

pub static SERVICE_ENERGY_JOULES: Metric = Metric {
    name: "unamentis.server.service.energy.joules",
    instrument: Instrument::Counter,
    unit: "J",
    value_type: ValueType::Double,
    brief: "Cumulative ESTIMATED energy attributable to the service since the agent started, in joules, per domain (cpu, gpu): each interval's package or GPU energy times the service's share as in service.power_watts; the services plus other equal the domain's energy.",
    attributes: &[attr::UNAMENTIS_SERVICE, attr::DOMAIN],
};

pub static SERVICE_IDLE_ENERGY_JOULES: Metric = Metric {
    name: "unamentis.server.service.idle_energy.joules",
    instrument: Instrument::Counter,
    unit: "J",
    value_type: ValueType::Double,
    brief: "Cumulative ESTIMATED energy attributed to the service (domain cpu or gpu, as service.energy.joules) during the part of each interval in which the service itself was idle (its last activity + idle_after), in joules: which service burned how much while nobody used it.",
    attributes: &[attr::UNAMENTIS_SERVICE, attr::DOMAIN],
};

pub static PROCESS_CPU_PERCENT: Metric = Metric {
    name: "unamentis.server.process.cpu_percent",
    instrument: Instrument::Gauge,
    unit: "%",
    value_type: ValueType::Double,
    brief: "CPU used by one of the top-N busiest processes not matched by any service over the last collection interval, as a percentage of one core like ps.",
    attributes: &[attr::PROCESS_EXECUTABLE_NAME, attr::PROCESS_PID, attr::CONTAINER_ID, attr::K8S_POD_UID],
};

pub static PROCESS_MEMORY_MB: Metric = Metric {
    name: "unamentis.server.process.memory_mb",
    instrument: Instrument::Gauge,
    unit: "MiBy",
    value_type: ValueType::Double,
    brief: "Resident set size of one of the top-N busiest processes not matched by any service, in mebibytes.",
    attributes: &[attr::PROCESS_EXECUTABLE_NAME, attr::PROCESS_PID, attr::CONTAINER_ID, attr::K8S_POD_UID],
};

pub static MODEL_LOADED: Metric = Metric {
    name: "unamentis.server.model.loaded",
    instrument: Instrument::Gauge,
    unit: "1",
    value_type: ValueType::Double,
    brief: "1 for each model currently loaded in Ollama, from GET /api/ps; a model that is not loaded reports no point.",
    attributes: &[attr::MODEL],
};

pub static MODEL_VRAM_MB: Metric = Metric {
    name: "unamentis.server.model.vram_mb",
    instrument: Instrument::Gauge,
    unit: "MiBy",
    value_type: ValueType::Double,
    brief: "GPU memory held by a model loaded in Ollama (size_vram from GET /api/ps), in mebibytes; 0 for a model running on the CPU only.",
    attributes: &[attr::MODEL],
};

pub static IDLE_DURATION_SECONDS: Metric = Metric {
    name: "unamentis.server.idle.duration_seconds",
    instrument: Instrument::Gauge,
    unit: "s",
    value_type: ValueType::Double,
    brief: "Seconds since the last activity seen by any probe; the host-wide point has no attribute, per-service points carry unamentis.service and count since that service's last activity.",
    attributes: &[attr::UNAMENTIS_SERVICE],
};

pub static IDLE_STATE: Metric = Metric {
    name: "unamentis.server.idle.state",
    instrument: Instrument::Gauge,
    unit: "1",
    value_type: ValueType::Double,
    brief: "1 when the host-wide idle.duration_seconds is at least the configured idle_after, else 0.",
    attributes: &[],
};

pub static IDLE_ENERGY_JOULES: Metric = Metric {
    name: "unamentis.server.idle.energy.joules",
    instrument: Instrument::Counter,
    unit: "J",
    value_type: ValueType::Double,
    brief: "Cumulative energy consumed by a power domain while the stack was idle (idle.state = 1) since the agent started, in joules.",
    attributes: &[attr::DOMAIN],
};

pub static SERVICE_IDLE_CPU_SECONDS: Metric = Metric {
    name: "unamentis.server.service.idle_cpu_seconds",
    instrument: Instrument::Counter,
    unit: "s",
    value_type: ValueType::Double,
    brief: "Cumulative CPU time (user + system) used by the service's process tree while the stack was idle (idle.state = 1) since the agent started, in seconds.",
    attributes: &[attr::UNAMENTIS_SERVICE],
};

pub static ACTIVITY_REQUESTS: Metric = Metric {
    name: "unamentis.server.activity.requests",
    instrument: Instrument::Counter,
    unit: "{request}",
    value_type: ValueType::Double,
    brief: "Cumulative number of requests to the service observed by the probe named in probe since the agent started, in requests.",
    attributes: &[attr::UNAMENTIS_SERVICE, attr::PROBE],
};

pub static ACTIVITY_INFERENCES: Metric = Metric {
    name: "unamentis.server.activity.inferences",
    instrument: Instrument::Counter,
    unit: "{request}",
    value_type: ValueType::Double,
    brief: "Cumulative number of model inferences (generations, transcriptions, syntheses) by the service observed by the probe named in probe since the agent started, in requests.",
    attributes: &[attr::UNAMENTIS_SERVICE, attr::PROBE],
};

pub static ACTIVITY_CONNECTIONS: Metric = Metric {
    name: "unamentis.server.activity.connections",
    instrument: Instrument::Gauge,
    unit: "{connection}",
    value_type: ValueType::Double,
    brief: "Number of established TCP connections on the service's listening ports, in connections.",
    attributes: &[attr::UNAMENTIS_SERVICE],
};

pub static AGENT_COLLECTION_DURATION: Metric = Metric {
    name: "unamentis.server.agent.collection.duration",
    instrument: Instrument::Gauge,
    unit: "s",
    value_type: ValueType::Double,
    brief: "Wall-clock time the source took to take its sample in the last collection cycle, in seconds.",
    attributes: &[attr::SOURCE],
};

pub static AGENT_SOURCE_UP: Metric = Metric {
    name: "unamentis.server.agent.source.up",
    instrument: Instrument::Gauge,
    unit: "1",
    value_type: ValueType::Double,
    brief: "1 when the source's last sample succeeded, 0 when it is unavailable (no permission, no hardware) or failed.",
    attributes: &[attr::SOURCE],
};

pub static AGENT_EXPORT_DROPPED_BATCHES: Metric = Metric {
    name: "unamentis.server.agent.export.dropped_batches",
    instrument: Instrument::Counter,
    unit: "{batch}",
    value_type: ValueType::Double,
    brief: "Cumulative number of metric export batches dropped because the bounded export queue was full (collector down or slow) since the agent started, in batches.",
    attributes: &[],
};

pub static PRESSURE_STALL_SECONDS: Metric = Metric {
    name: "unamentis.server.pressure.stall_seconds",
    instrument: Instrument::Counter,
    unit: "s",
    value_type: ValueType::Double,
    brief: "Cumulative time tasks stalled waiting for a resource since boot, in seconds (pressure stall information).",
    attributes: &[attr::RESOURCE, attr::STALL],
};

pub static SYSTEM_CPU_TIME: Metric = Metric {
    name: "system.cpu.time",
    instrument: Instrument::Counter,
    unit: "s",
    value_type: ValueType::Double,
    brief: "Cumulative time each logical CPU spent in each state since boot, in seconds (hostmetrics compatibility).",
    attributes: &[attr::CPU, attr::STATE],
};

pub static SYSTEM_MEMORY_USAGE: Metric = Metric {
    name: "system.memory.usage",
    instrument: Instrument::UpDownCounter,
    unit: "By",
    value_type: ValueType::Int,
    brief: "Bytes of host memory in each state, as the hostmetrics receiver reports them: used, free, buffered and cached add up to MemTotal; slab_reclaimable is also inside cached and slab_unreclaimable inside used (hostmetrics compatibility).",
    attributes: &[attr::STATE],
};

pub static SYSTEM_CPU_LOAD_AVERAGE_1M: Metric = Metric {
    name: "system.cpu.load_average.1m",
    instrument: Instrument::Gauge,
    unit: "{thread}",
    value_type: ValueType::Double,
    brief: "Average CPU load over 1 minute, the same value as unamentis.server.cpu.load_average{period=1m} (hostmetrics compatibility).",
    attributes: &[],
};

pub static SYSTEM_CPU_LOAD_AVERAGE_5M: Metric = Metric {
    name: "system.cpu.load_average.5m",
    instrument: Instrument::Gauge,
    unit: "{thread}",
    value_type: ValueType::Double,
    brief: "Average CPU load over 5 minutes, the same value as unamentis.server.cpu.load_average{period=5m} (hostmetrics compatibility).",
    attributes: &[],
};

pub static SYSTEM_CPU_LOAD_AVERAGE_15M: Metric = Metric {
    name: "system.cpu.load_average.15m",
    instrument: Instrument::Gauge,
    unit: "{thread}",
    value_type: ValueType::Double,
    brief: "Average CPU load over 15 minutes, the same value as unamentis.server.cpu.load_average{period=15m} (hostmetrics compatibility).",
    attributes: &[],
};

pub static SYSTEM_FILESYSTEM_USAGE: Metric = Metric {
    name: "system.filesystem.usage",
    instrument: Instrument::UpDownCounter,
    unit: "By",
    value_type: ValueType::Int,
    brief: "Bytes of each mounted filesystem in each state: used, free (available to unprivileged users) and reserved (for root) (hostmetrics compatibility).",
    attributes: &[attr::DEVICE, attr::MODE, attr::MOUNTPOINT, attr::TYPE, attr::STATE],
};

pub static SYSTEM_FILESYSTEM_INODES_USAGE: Metric = Metric {
    name: "system.filesystem.inodes.usage",
    instrument: Instrument::UpDownCounter,
    unit: "{inodes}",
    value_type: ValueType::Int,
    brief: "Inodes of each mounted filesystem in each state: used and free (hostmetrics compatibility).",
    attributes: &[attr::DEVICE, attr::MODE, attr::MOUNTPOINT, attr::TYPE, attr::STATE],
};

pub static SYSTEM_DISK_IO: Metric = Metric {
    name: "system.disk.io",
    instrument: Instrument::Counter,
    unit: "By",
    value_type: ValueType::Int,
    brief: "Bytes read from and written to each block device since boot.",
    attributes: &[attr::DEVICE, attr::DIRECTION],
};

pub static SYSTEM_DISK_OPERATIONS: Metric = Metric {
    name: "system.disk.operations",
    instrument: Instrument::Counter,
    unit: "{operations}",
    value_type: ValueType::Int,
    brief: "Read and write operations completed by each block device since boot.",
    attributes: &[attr::DEVICE, attr::DIRECTION],
};

pub static SYSTEM_DISK_MERGED: Metric = Metric {
    name: "system.disk.merged",
    instrument: Instrument::Counter,
    unit: "{operations}",
    value_type: ValueType::Int,
    brief: "Reads and writes merged into adjacent ones before reaching each block device, since boot.",
    attributes: &[attr::DEVICE, attr::DIRECTION],
};

pub static SYSTEM_DISK_IO_TIME: Metric = Metric {
    name: "system.disk.io_time",
    instrument: Instrument::Counter,
    unit: "s",
    value_type: ValueType::Double,
    brief: "Time each block device had I/O in flight since boot, in seconds.",
    attributes: &[attr::DEVICE],
};

pub static SYSTEM_DISK_OPERATION_TIME: Metric = Metric {
    name: "system.disk.operation_time",
    instrument: Instrument::Counter,
    unit: "s",
    value_type: ValueType::Double,
    brief: "Time spent by reads and by writes on each block device since boot, summed over operations, in seconds.",
    attributes: &[attr::DEVICE, attr::DIRECTION],
};

pub static SYSTEM_DISK_WEIGHTED_IO_TIME: Metric = Metric {
    name: "system.disk.weighted_io_time",
    instrument: Instrument::Counter,
    unit: "s",
    value_type: ValueType::Double,
    brief: "I/O time of each block device weighted by the number of operations in flight, since boot, in seconds.",
    attributes: &[attr::DEVICE],
};

pub static SYSTEM_DISK_PENDING_OPERATIONS: Metric = Metric {
    name: "system.disk.pending_operations",
    instrument: Instrument::UpDownCounter,
    unit: "{operations}",
    value_type: ValueType::Int,
    brief: "Operations in flight on each block device now.",
    attributes: &[attr::DEVICE],
};

pub static SYSTEM_NETWORK_IO: Metric = Metric {
    name: "system.network.io",
    instrument: Instrument::Counter,
    unit: "By",
    value_type: ValueType::Int,
    brief: "Bytes received and transmitted by each network interface since boot.",
    attributes: &[attr::DEVICE, attr::DIRECTION],
};

pub static SYSTEM_NETWORK_PACKETS: Metric = Metric {
    name: "system.network.packets",
    instrument: Instrument::Counter,
    unit: "{packets}",
    value_type: ValueType::Int,
    brief: "Packets received and transmitted by each network interface since boot.",
    attributes: &[attr::DEVICE, attr::DIRECTION],
};

pub static SYSTEM_NETWORK_ERRORS: Metric = Metric {
    name: "system.network.errors",
    instrument: Instrument::Counter,
    unit: "{errors}",
    value_type: ValueType::Int,
    brief: "Receive and transmit errors of each network interface since boot.",
    attributes: &[attr::DEVICE, attr::DIRECTION],
};

pub static SYSTEM_NETWORK_DROPPED: Metric = Metric {
    name: "system.network.dropped",
    instrument: Instrument::Counter,
    unit: "{packets}",
    value_type: ValueType::Int,
    brief: "Packets each network interface dropped on receive and transmit since boot.",
    attributes: &[attr::DEVICE, attr::DIRECTION],
};

pub static SYSTEM_NETWORK_CONNECTIONS: Metric = Metric {
    name: "system.network.connections",
    instrument: Instrument::UpDownCounter,
    unit: "{connections}",
    value_type: ValueType::Int,
    brief: "TCP connections of the host now, by state.",
    attributes: &[attr::PROTOCOL, attr::STATE],
};

pub static SYSTEM_PAGING_USAGE: Metric = Metric {
    name: "system.paging.usage",
    instrument: Instrument::UpDownCounter,
    unit: "By",
    value_type: ValueType::Int,
    brief: "Bytes of each swap area used and free.",
    attributes: &[attr::DEVICE, attr::STATE],
};

pub static SYSTEM_PAGING_OPERATIONS: Metric = Metric {
    name: "system.paging.operations",
    instrument: Instrument::Counter,
    unit: "{operations}",
    value_type: ValueType::Int,
    brief: "Paging operations since boot: type major are pages swapped in and out (pswpin, pswpout), type minor the block I/O of paging in KiB as the kernel counts it (pgpgin, pgpgout).",
    attributes: &[attr::DIRECTION, attr::TYPE],
};

pub static SYSTEM_PAGING_FAULTS: Metric = Metric {
    name: "system.paging.faults",
    instrument: Instrument::Counter,
    unit: "{faults}",
    value_type: ValueType::Int,
    brief: "Page faults since boot: major (waited for I/O, pgmajfault) and minor (pgfault - pgmajfault).",
    attributes: &[attr::TYPE],
};

pub static SYSTEM_PROCESSES_COUNT: Metric = Metric {
    name: "system.processes.count",
    instrument: Instrument::UpDownCounter,
    unit: "{processes}",
    value_type: ValueType::Int,
    brief: "Tasks runnable (running) and blocked on I/O (blocked) now.",
    attributes: &[attr::STATUS],
};

pub static SYSTEM_PROCESSES_CREATED: Metric = Metric {
    name: "system.processes.created",
    instrument: Instrument::Counter,
    unit: "{processes}",
    value_type: ValueType::Int,
    brief: "Processes and threads created since boot.",
    attributes: &[],
};

pub static SYSTEM_CPU_FREQUENCY: Metric = Metric {
    name: "system.cpu.frequency",
    instrument: Instrument::Gauge,
    unit: "Hz",
    value_type: ValueType::Double,
    brief: "Current frequency of each logical CPU, in hertz.",
    attributes: &[attr::CPU],
};

pub static HW_POWER: Metric = Metric {
    name: "hw.power",
    instrument: Instrument::Gauge,
    unit: "W",
    value_type: ValueType::Double,
    brief: "Average power drawn by a hardware component over the last collection interval, in watts (hw.* compatibility).",
    attributes: &[attr::HW_ID, attr::HW_TYPE],
};

pub static HW_ENERGY: Metric = Metric {
    name: "hw.energy",
    instrument: Instrument::Counter,
    unit: "J",
    value_type: ValueType::Double,
    brief: "Cumulative energy consumed by a hardware component since the agent started, in joules (hw.* compatibility).",
    attributes: &[attr::HW_ID, attr::HW_TYPE],
};

pub static HW_BATTERY_CHARGE: Metric = Metric {
    name: "hw.battery.charge",
    instrument: Instrument::Gauge,
    unit: "1",
    value_type: ValueType::Double,
    brief: "Charge of the system batteries as a fraction from 0 to 1 (hw.* compatibility: battery.charge_percent / 100).",
    attributes: &[attr::HW_ID, attr::HW_TYPE],
};

pub static HW_BATTERY_TIME_LEFT: Metric = Metric {
    name: "hw.battery.time_left",
    instrument: Instrument::Gauge,
    unit: "s",
    value_type: ValueType::Double,
    brief: "Time until the system batteries are empty, in seconds (hw.* compatibility: battery.time_left).",
    attributes: &[attr::HW_ID, attr::HW_TYPE],
};

pub static HW_TEMPERATURE: Metric = Metric {
    name: "hw.temperature",
    instrument: Instrument::Gauge,
    unit: "Cel",
    value_type: ValueType::Double,
    brief: "Temperature of a hardware component's sensor, in degrees Celsius (hw.* compatibility).",
    attributes: &[attr::HW_ID, attr::HW_TYPE],
};

pub static HW_GPU_MEMORY_USAGE: Metric = Metric {
    name: "hw.gpu.memory.usage",
    instrument: Instrument::UpDownCounter,
    unit: "By",
    value_type: ValueType::Double,
    brief: "GPU memory in use on one GPU, in bytes (hw.* compatibility).",
    attributes: &[attr::HW_ID, attr::HW_TYPE],
};

pub static HW_GPU_MEMORY_LIMIT: Metric = Metric {
    name: "hw.gpu.memory.limit",
    instrument: Instrument::UpDownCounter,
    unit: "By",
    value_type: ValueType::Double,
    brief: "Total GPU memory of one GPU, in bytes (hw.* compatibility).",
    attributes: &[attr::HW_ID, attr::HW_TYPE],
};

pub static HW_GPU_UTILIZATION: Metric = Metric {
    name: "hw.gpu.utilization",
    instrument: Instrument::Gauge,
    unit: "1",
    value_type: ValueType::Double,
    brief: "Busy share of one GPU as a fraction from 0 to 1 (hw.* compatibility: gpu.utilization_percent / 100).",
    attributes: &[attr::HW_ID, attr::HW_TYPE],
};

/// Every metric of the registry, in registry order.
pub static ALL: &[&Metric] = &[
    &CPU_PERCENT,
    &CPU_LOAD_AVERAGE,
    &CPU_CORES,
    &MEMORY_USED_MB,
    &MEMORY_AVAILABLE_MB,
    &MEMORY_TOTAL_MB,
    &MEMORY_PERCENT,
    &GPU_VRAM_USED_MB,
    &GPU_VRAM_TOTAL_MB,
    &GPU_UTILIZATION_PERCENT,
    &GPU_TEMPERATURE,
    &POWER_CPU_WATTS,
    &POWER_GPU_WATTS,
    &POWER_PACKAGE_WATTS,
    &POWER_DRAM_WATTS,
    &POWER_ANE_WATTS,
    &POWER_BATTERY_WATTS,
    &BATTERY_CHARGE_PERCENT,
    &BATTERY_TIME_LEFT,
    &POWER_AC_ONLINE,
    &ENERGY_JOULES,
    &THERMAL_TEMPERATURE,
    &THERMAL_PRESSURE,
    &THERMAL_FAN_RPM,
    &THERMAL_THROTTLE_EVENTS,
    &SERVICE_CPU_PERCENT,
    &SERVICE_MEMORY_MB,
    &SERVICE_THREADS,
    &SERVICE_OPEN_FILES,
    &SERVICE_DISK_IO_BYTES,
    &SERVICE_PROCESSES,
    &SERVICE_UP,
    &SERVICE_MEMORY_GROWTH_MB_PER_HOUR,
    &SERVICE_VRAM_MB,
    &SERVICE_POWER_WATTS,
    &SERVICE_ENERGY_JOULES,
    &SERVICE_IDLE_ENERGY_JOULES,
    &PROCESS_CPU_PERCENT,
    &PROCESS_MEMORY_MB,
    &MODEL_LOADED,
    &MODEL_VRAM_MB,
    &IDLE_DURATION_SECONDS,
    &IDLE_STATE,
    &IDLE_ENERGY_JOULES,
    &SERVICE_IDLE_CPU_SECONDS,
    &ACTIVITY_REQUESTS,
    &ACTIVITY_INFERENCES,
    &ACTIVITY_CONNECTIONS,
    &AGENT_COLLECTION_DURATION,
    &AGENT_SOURCE_UP,
    &AGENT_EXPORT_DROPPED_BATCHES,
    &PRESSURE_STALL_SECONDS,
    &SYSTEM_CPU_TIME,
    &SYSTEM_MEMORY_USAGE,
    &SYSTEM_CPU_LOAD_AVERAGE_1M,
    &SYSTEM_CPU_LOAD_AVERAGE_5M,
    &SYSTEM_CPU_LOAD_AVERAGE_15M,
    &SYSTEM_FILESYSTEM_USAGE,
    &SYSTEM_FILESYSTEM_INODES_USAGE,
    &SYSTEM_DISK_IO,
    &SYSTEM_DISK_OPERATIONS,
    &SYSTEM_DISK_MERGED,
    &SYSTEM_DISK_IO_TIME,
    &SYSTEM_DISK_OPERATION_TIME,
    &SYSTEM_DISK_WEIGHTED_IO_TIME,
    &SYSTEM_DISK_PENDING_OPERATIONS,
    &SYSTEM_NETWORK_IO,
    &SYSTEM_NETWORK_PACKETS,
    &SYSTEM_NETWORK_ERRORS,
    &SYSTEM_NETWORK_DROPPED,
    &SYSTEM_NETWORK_CONNECTIONS,
    &SYSTEM_PAGING_USAGE,
    &SYSTEM_PAGING_OPERATIONS,
    &SYSTEM_PAGING_FAULTS,
    &SYSTEM_PROCESSES_COUNT,
    &SYSTEM_PROCESSES_CREATED,
    &SYSTEM_CPU_FREQUENCY,
    &HW_POWER,
    &HW_ENERGY,
    &HW_BATTERY_CHARGE,
    &HW_BATTERY_TIME_LEFT,
    &HW_TEMPERATURE,
    &HW_GPU_MEMORY_USAGE,
    &HW_GPU_MEMORY_LIMIT,
    &HW_GPU_UTILIZATION,
];
