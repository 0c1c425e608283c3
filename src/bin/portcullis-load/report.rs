//! Counters and latency samples of one run, and how they are printed: a
//! human summary, then one JSON line (always the last line of stdout) for
//! scripts.

use std::time::Duration;

use serde::Serialize;

/// What a protocol driver counted. Latencies are kept exactly (one `u32` of
/// 100 ns units per answered request: 4 MB per million), so percentiles
/// need no histogram approximations.
#[derive(Default)]
pub(crate) struct Counters {
    /// Requests sent for the first time (retransmissions not included).
    pub(crate) sent: u64,
    /// Retransmissions after a timeout.
    pub(crate) retransmits: u64,
    /// Verified replies of the expected kind (e.g. Access-Accept).
    pub(crate) ok: u64,
    /// `ok` replies received inside the measured window.
    pub(crate) ok_in_window: u64,
    /// Verified replies of another kind (e.g. Access-Reject).
    pub(crate) rejected: u64,
    /// Requests given up after the last retransmission timed out.
    pub(crate) lost: u64,
    /// Replies that failed verification, did not parse or matched nothing.
    pub(crate) bad: u64,
    /// Replies to a request already given up (verified against it).
    pub(crate) late: u64,
    /// Socket errors (e.g. ICMP port unreachable).
    pub(crate) errors: u64,
    /// Open loop: sends that could not start on time because every
    /// request slot was busy.
    pub(crate) behind: u64,
    latencies: Vec<u32>,
}

impl Counters {
    pub(crate) fn record(&mut self, latency: Duration) {
        let units = latency.as_nanos() / 100;
        self.latencies.push(units.min(u128::from(u32::MAX)) as u32);
    }
}

#[derive(Serialize)]
pub(crate) struct Report {
    pub(crate) protocol: &'static str,
    pub(crate) server: String,
    /// "closed" (fixed outstanding) or "open" (target rate).
    pub(crate) mode: &'static str,
    pub(crate) target_rate: Option<f64>,
    pub(crate) outstanding: usize,
    pub(crate) sockets: usize,
    pub(crate) users: u32,
    pub(crate) duration_s: f64,
    /// Expected replies per second inside the measured window.
    pub(crate) rps: f64,
    pub(crate) sent: u64,
    pub(crate) retransmits: u64,
    pub(crate) ok: u64,
    pub(crate) rejected: u64,
    pub(crate) lost: u64,
    pub(crate) bad: u64,
    pub(crate) late: u64,
    pub(crate) errors: u64,
    pub(crate) behind: u64,
    pub(crate) p50_us: f64,
    pub(crate) p90_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) p999_us: f64,
    pub(crate) max_us: f64,
    pub(crate) mean_us: f64,
    /// Kernel receive-buffer drops on the server's port during the run
    /// (`/proc/net/udp`), when the server is on this host.
    pub(crate) server_kernel_drops: Option<u64>,
    /// The same for this generator's own sockets.
    pub(crate) client_kernel_drops: Option<u64>,
    /// Whether replies had to carry a valid Message-Authenticator.
    pub(crate) reply_ma_required: bool,
    /// This generator's CPU use (user + system) over the run, in cores: near
    /// 1.0 means the generator, not the server, may have set the pace. Set
    /// by drivers that measure it.
    pub(crate) generator_cpu: Option<f64>,
    /// TCP connections opened during the run, for connection-oriented
    /// protocols (TACACS+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) connects: Option<u64>,
}

/// Fields of [`Report`] a driver fills in besides the counters.
pub(crate) struct RunInfo {
    pub(crate) protocol: &'static str,
    pub(crate) server: String,
    pub(crate) target_rate: Option<f64>,
    pub(crate) outstanding: usize,
    pub(crate) sockets: usize,
    pub(crate) users: u32,
    pub(crate) window: Duration,
    pub(crate) server_kernel_drops: Option<u64>,
    pub(crate) client_kernel_drops: Option<u64>,
    pub(crate) reply_ma_required: bool,
}

impl Report {
    pub(crate) fn new(info: RunInfo, mut c: Counters) -> Self {
        c.latencies.sort_unstable();
        let l = &c.latencies;
        let us = |units: u32| f64::from(units) / 10.0;
        let pct = |q: f64| {
            if l.is_empty() {
                return 0.0;
            }
            // Nearest rank.
            let rank = ((q * l.len() as f64).ceil() as usize).clamp(1, l.len());
            us(l[rank - 1])
        };
        let mean = if l.is_empty() {
            0.0
        } else {
            l.iter().map(|&x| f64::from(x)).sum::<f64>() / l.len() as f64 / 10.0
        };
        let secs = info.window.as_secs_f64();
        Self {
            protocol: info.protocol,
            server: info.server,
            mode: if info.target_rate.is_some() {
                "open"
            } else {
                "closed"
            },
            target_rate: info.target_rate,
            outstanding: info.outstanding,
            sockets: info.sockets,
            users: info.users,
            duration_s: secs,
            rps: if secs > 0.0 {
                c.ok_in_window as f64 / secs
            } else {
                0.0
            },
            sent: c.sent,
            retransmits: c.retransmits,
            ok: c.ok,
            rejected: c.rejected,
            lost: c.lost,
            bad: c.bad,
            late: c.late,
            errors: c.errors,
            behind: c.behind,
            p50_us: pct(0.50),
            p90_us: pct(0.90),
            p99_us: pct(0.99),
            p999_us: pct(0.999),
            max_us: l.last().map_or(0.0, |&x| us(x)),
            mean_us: mean,
            server_kernel_drops: info.server_kernel_drops,
            client_kernel_drops: info.client_kernel_drops,
            reply_ma_required: info.reply_ma_required,
            generator_cpu: None,
            connects: None,
        }
    }

    pub(crate) fn print(&self) {
        let rate = match self.target_rate {
            Some(r) => format!(
                "open loop at {r:.0}/s (at most {} in flight)",
                self.outstanding
            ),
            None => format!("closed loop, {} outstanding", self.outstanding),
        };
        println!(
            "{} {}: {rate} over {} sockets, {:.1} s",
            self.protocol, self.server, self.sockets, self.duration_s
        );
        println!("  requests/s  {:.0}", self.rps);
        println!(
            "  latency     p50 {:.1} µs  p90 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  max {:.1} µs",
            self.p50_us, self.p90_us, self.p99_us, self.p999_us, self.max_us
        );
        println!(
            "  sent {}  ok {}  rejected {}  lost {}  bad {}  late {}  retransmits {}  errors {}  behind {}",
            self.sent,
            self.ok,
            self.rejected,
            self.lost,
            self.bad,
            self.late,
            self.retransmits,
            self.errors,
            self.behind
        );
        let drops = |d: Option<u64>| d.map_or_else(|| "n/a".to_string(), |d| d.to_string());
        println!(
            "  kernel drops: server port {}  generator sockets {}",
            drops(self.server_kernel_drops),
            drops(self.client_kernel_drops),
        );
        if let Some(cpu) = self.generator_cpu {
            println!("  generator CPU {:.0}% of one core", 100.0 * cpu);
        }
        if let Some(n) = self.connects {
            println!("  connections opened {n}");
        }
        println!(
            "{}",
            serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    }
}

/// CPU time (user + system) this process has used.
pub(crate) fn cpu_time() -> Duration {
    // SAFETY: getrusage writes one rusage struct, for which all-zero is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
