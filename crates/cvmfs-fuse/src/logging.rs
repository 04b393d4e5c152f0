//! Where `cvmfs2` logs, as upstream (spec 8.6): syslog (identity `cvmfs2`, messages
//! prefixed `(<fqrn>) `, warnings and errors always, info at `CVMFS_SYSLOG_LEVEL`),
//! every debug message to `CVMFS_DEBUGLOG` if set, and standard error while in the
//! foreground. `CVMFS_LOG` (an env-filter directive) overrides the levels.

use std::ffi::CString;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Sends events at `max_level` or more severe to syslog.
struct SyslogLayer {
    prefix: String,
    max_level: Level,
}

impl SyslogLayer {
    fn new(fqrn: &str, max_level: Level) -> SyslogLayer {
        // openlog keeps the pointer: the identity must live for the whole process.
        static IDENTITY: &[u8] = b"cvmfs2\0";
        // SAFETY: IDENTITY is a static NUL-terminated string.
        unsafe { libc::openlog(IDENTITY.as_ptr().cast(), libc::LOG_PID, libc::LOG_DAEMON) };
        SyslogLayer { prefix: format!("({fqrn}) "), max_level }
    }
}

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for SyslogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > self.max_level || event.metadata().target().starts_with("fuser") {
            return;
        }
        let mut message = Message::default();
        event.record(&mut message);
        let priority = match level {
            Level::ERROR => libc::LOG_ERR,
            Level::WARN => libc::LOG_WARNING,
            Level::INFO => libc::LOG_NOTICE,
            _ => libc::LOG_DEBUG,
        };
        if let Ok(text) = CString::new(format!("{}{}", self.prefix, message.0).replace('\0', " ")) {
            // SAFETY: "%s" with one NUL-terminated string argument.
            unsafe { libc::syslog(priority, c"%s".as_ptr(), text.as_ptr()) };
        }
    }
}

/// Sets up logging for a mount of `fqrn`. `syslog_level` is upstream's
/// `CVMFS_SYSLOG_LEVEL` (1 = debug, 2 = info, 3 = notice/warnings only).
pub fn init(fqrn: &str, debug: bool, foreground: bool, syslog_level: u32, debug_log: Option<&Path>) {
    let default = if debug { "debug" } else { "warn,fuser=off" };
    let stderr_filter = EnvFilter::try_from_env("CVMFS_LOG").unwrap_or_else(|_| default.into());
    let stderr = foreground
        .then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(stderr_filter));
    let syslog_max = match syslog_level {
        1 => Level::DEBUG,
        2 => Level::INFO,
        _ => Level::WARN,
    };
    let syslog = (!foreground || std::env::var_os("CVMFS_SYSLOG_ALWAYS").is_some())
        .then(|| SyslogLayer::new(fqrn, syslog_max));
    let debug_file = debug_log.and_then(|path| {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).ok()?;
        Some(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .with_filter(EnvFilter::new("debug,fuser=info")),
        )
    });
    let _ = tracing_subscriber::registry().with(stderr).with(syslog).with(debug_file).try_init();
}
