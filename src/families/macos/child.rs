//! Keeps ONE long-lived streaming child (powermetrics) running: its stdout
//! is read on a dedicated thread, every document goes into the shared
//! [`PowermetricsState`], the child is restarted with backoff when it dies
//! and killed when the [`Supervisor`] is dropped.
//!
//! Written against any program so that the restart, sampler fallback and
//! kill-on-drop logic is tested on Linux with a shell script standing in
//! for powermetrics; only macOS uses it for real.

use std::ffi::OsString;
use std::io::{self, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use super::powermetrics::{Backoff, PlistStream, PowermetricsState, SamplerPlan};

/// Builds the argument list for one sampler set.
pub type ArgsFor = Box<dyn Fn(&str) -> Vec<OsString> + Send>;

struct Shared {
    state: Mutex<PowermetricsState>,
    child: Mutex<Option<Child>>,
    stop: AtomicBool,
    /// Wakes the supervisor out of a backoff wait on shutdown.
    wake: Condvar,
    wake_lock: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct Supervisor {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    pub fn start(program: OsString, args_for: ArgsFor, backoff: Backoff) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(PowermetricsState::default()),
            child: Mutex::new(None),
            stop: AtomicBool::new(false),
            wake: Condvar::new(),
            wake_lock: Mutex::new(()),
        });
        let s = shared.clone();
        let thread = thread::Builder::new()
            .name("powermetrics".into())
            .spawn(move || supervise(&s, &program, &args_for, backoff))?;
        Ok(Supervisor {
            shared,
            thread: Some(thread),
        })
    }

    /// The shared state: latest sample, energy totals, last error.
    pub fn state(&self) -> MutexGuard<'_, PowermetricsState> {
        lock(&self.shared.state)
    }

    /// Pid of the running child, if one is running.
    pub fn child_pid(&self) -> Option<u32> {
        lock(&self.shared.child).as_ref().map(Child::id)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(child) = lock(&self.shared.child).as_mut() {
            // EOF on its stdout then ends the reader loop.
            let _ = child.kill();
        }
        {
            let _guard = lock(&self.shared.wake_lock);
            self.shared.wake.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn supervise(shared: &Shared, program: &OsString, args_for: &ArgsFor, mut backoff: Backoff) {
    let mut plan = SamplerPlan::default();
    while !shared.stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let before = lock(&shared.state).documents;
        let error = run_once(shared, program, args_for(plan.current()));
        let delivered = lock(&shared.state).documents - before;
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        plan.run_ended(delivered);
        let delay = backoff.after_exit(started.elapsed());
        tracing::debug!(
            delay = ?delay,
            "powermetrics ended ({error}); next samplers {}",
            plan.current()
        );
        lock(&shared.state).last_error = Some(error);
        let guard = lock(&shared.wake_lock);
        if !shared.stop.load(Ordering::SeqCst) {
            let _ = shared
                .wake
                .wait_timeout(guard, delay)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Runs the child once until its stdout closes; returns why it ended.
fn run_once(shared: &Shared, program: &OsString, args: Vec<OsString>) -> String {
    let spawned = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return format!("cannot start {}: {e}", program.to_string_lossy()),
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    {
        let mut slot = lock(&shared.child);
        // Checked under the lock Drop takes to kill: either Drop sees this
        // child, or this sees the stop flag.
        if shared.stop.load(Ordering::SeqCst) {
            let _ = child.kill();
            let _ = child.wait();
            return "stopped".into();
        }
        *slot = Some(child);
    }
    if let Some(mut out) = stdout {
        let mut stream = PlistStream::default();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match out.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let docs = stream.push(&buf[..n]);
                    if !docs.is_empty() {
                        let mut st = lock(&shared.state);
                        for d in docs {
                            st.ingest(&d);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    let status = lock(&shared.child).take().map(|mut c| {
        // Closed stdout but still alive: it is of no use any more.
        let _ = c.kill();
        c.wait()
    });
    // Read after exit: powermetrics writes a line or two at most
    // ("must be invoked as the superuser", an unknown sampler).
    let mut err_text = String::new();
    if let Some(e) = stderr {
        let _ = e.take(4096).read_to_string(&mut err_text);
    }
    let last_line = err_text.lines().rev().find(|l| !l.trim().is_empty());
    let status = match status {
        Some(Ok(s)) => s.to_string(),
        Some(Err(e)) => e.to_string(),
        None => "gone".into(),
    };
    match last_line {
        Some(l) => format!("powermetrics exited ({status}): {}", l.trim()),
        None => format!("powermetrics exited ({status})"),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::Duration;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/macos");

    /// `sh -c SCRIPT sh SAMPLERS`: the script sees the sampler list as $1
    /// and the fixture directory as its working directory.
    fn fake(script: &'static str) -> Supervisor {
        let args: ArgsFor = Box::new(move |samplers| {
            vec![
                "-c".into(),
                format!("cd {FIXTURES} && {script}").into(),
                "sh".into(),
                samplers.into(),
            ]
        });
        let ms = Duration::from_millis;
        Supervisor::start("sh".into(), args, Backoff::new(ms(10), ms(40), ms(60_000))).unwrap()
    }

    /// Polls `cond` on the state; the deadline is only a safety limit.
    fn wait_for(s: &Supervisor, cond: impl Fn(&PowermetricsState) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if cond(&s.state()) {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn documents_are_ingested_and_a_dying_child_is_restarted() {
        let s = fake(
            "cat powermetrics-apple-energy.plist; printf '\\0'; \
             cat powermetrics-apple-energy.plist; exit 1",
        );
        // Two documents per run: four or more means it was restarted.
        assert!(wait_for(&s, |st| st.documents >= 4));
        let st = s.state();
        assert_eq!(st.bad_documents, 0);
        // 7.2 J of CPU energy per document, never lost across restarts.
        let cpu = st.energy.get("cpu").unwrap();
        assert!((cpu - 7.2 * st.documents as f64).abs() < 1e-6, "{cpu}");
    }

    #[test]
    fn the_exit_reason_carries_stderr() {
        let s = fake("echo 'powermetrics must be invoked as the superuser' >&2; exit 1");
        assert!(wait_for(&s, |st| st.last_error.as_deref().is_some_and(
            |e| e.contains("exit status: 1") && e.ends_with("must be invoked as the superuser")
        )));
        assert_eq!(s.state().documents, 0);
    }

    #[test]
    fn unknown_samplers_fall_back_to_a_set_that_runs() {
        // Like powermetrics on Apple Silicon: smc is unknown and aborts.
        let s = fake(
            "case \"$1\" in *smc*) echo \"unrecognized sampler: smc\" >&2; exit 64;; esac; \
             cat powermetrics-apple-m2.plist; exec sleep 30",
        );
        assert!(wait_for(&s, |st| st.documents >= 1));
        assert_eq!(s.state().latest.as_ref().and_then(|l| l.pressure), Some(2));
    }

    #[test]
    fn dropping_the_supervisor_kills_the_child() {
        let s = fake("cat powermetrics-intel.plist; exec sleep 30");
        assert!(wait_for(&s, |st| st.documents >= 1));
        let pid = s.child_pid().expect("child running");
        let started = Instant::now();
        drop(s);
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} survived"
        );
    }
}
