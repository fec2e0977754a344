//! Results of workload runs and how they are printed: one run as text or a
//! JSON line, and the side-by-side table of a compare.

use std::fmt::Write;
use std::time::Duration;

use crate::disk::FsyncFloor;
use crate::hist::{Latency, Summary, ratio};
use crate::json::Object;
use crate::rtt::LoopbackRtt;

/// Error messages kept per result.
const MAX_ERROR_SAMPLES: usize = 5;
const MIB: f64 = 1024.0 * 1024.0;

/// The outcome of one workload run (or of several rounds merged).
#[derive(Debug, Clone)]
pub struct RunResult {
    pub label: String,
    pub command: String,
    /// Operations the run set out to do.
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub elapsed: Duration,
    /// The wall-time bound cut the run short.
    pub timed_out: bool,
    pub latency: Latency,
    /// Per-kind latencies (read/write, watch-create, ...).
    pub breakdown: Vec<(String, Latency)>,
}

impl RunResult {
    pub fn new(label: &str, command: &str, requests: u64) -> Self {
        RunResult {
            label: label.into(),
            command: command.into(),
            requests,
            ok: 0,
            errors: 0,
            error_samples: Vec::new(),
            elapsed: Duration::ZERO,
            timed_out: false,
            latency: Latency::default(),
            breakdown: Vec::new(),
        }
    }

    pub fn note_error(&mut self, e: String) {
        if self.error_samples.len() < MAX_ERROR_SAMPLES && !self.error_samples.contains(&e) {
            self.error_samples.push(e);
        }
    }

    /// Successful operations per second of wall time.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs == 0.0 {
            0.0
        } else {
            self.ok as f64 / secs
        }
    }

    /// Every planned operation happened and succeeded.
    pub fn all_ok(&self) -> bool {
        self.errors == 0 && self.ok == self.requests && !self.timed_out
    }

    /// Folds another round of the same workload into this one: counts and
    /// times add, distributions merge, so throughput is total ops over total time.
    pub fn absorb(&mut self, other: &RunResult) {
        self.requests += other.requests;
        self.ok += other.ok;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.timed_out |= other.timed_out;
        self.latency.merge(&other.latency);
        for e in &other.error_samples {
            self.note_error(e.clone());
        }
        for (name, lat) in &other.breakdown {
            match self.breakdown.iter_mut().find(|(n, _)| n == name) {
                Some((_, mine)) => mine.merge(lat),
                None => self.breakdown.push((name.clone(), lat.clone())),
            }
        }
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}  ({})", self.label, self.command);
        let _ = writeln!(
            s,
            "  requests {}  ok {}  errors {}  elapsed {:.3}s  throughput {:.1}/s{}",
            self.requests,
            self.ok,
            self.errors,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            if self.timed_out {
                "  (stopped by --timeout)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "  {:<12} {}",
            "latency",
            summary_text(&self.latency.summary())
        );
        for (name, lat) in &self.breakdown {
            let _ = writeln!(s, "  {name:<12} {}", summary_text(&lat.summary()));
        }
        for e in &self.error_samples {
            let _ = writeln!(s, "  error: {e}");
        }
        s
    }

    pub fn json(&self) -> Object {
        Object::new()
            .str("workload", &self.label)
            .str("command", &self.command)
            .u64("requests", self.requests)
            .u64("ok", self.ok)
            .u64("errors", self.errors)
            .f64("elapsed_s", self.elapsed.as_secs_f64())
            .bool("timed_out", self.timed_out)
            .f64("throughput", self.throughput())
            .object("latency_us", summary_json(&self.latency.summary()))
            .objects(
                "breakdown",
                self.breakdown
                    .iter()
                    .map(|(n, l)| {
                        Object::new()
                            .str("name", n)
                            .object("latency_us", summary_json(&l.summary()))
                    })
                    .collect(),
            )
            .strings("error_samples", &self.error_samples)
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn summary_text(s: &Summary) -> String {
    format!(
        "ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}  (n={})",
        ms(s.p50_us),
        ms(s.p90_us),
        ms(s.p99_us),
        ms(s.p999_us),
        ms(s.max_us),
        s.mean_us / 1000.0,
        s.count
    )
}

fn summary_json(s: &Summary) -> Object {
    Object::new()
        .u64("count", s.count)
        .f64("mean", s.mean_us)
        .u64("p50", s.p50_us)
        .u64("p90", s.p90_us)
        .u64("p99", s.p99_us)
        .u64("p99_9", s.p999_us)
        .u64("max", s.max_us)
}

/// One server's side of a workload in a compare.
#[derive(Debug, Clone)]
pub struct Side {
    pub result: RunResult,
    /// Highest VmRSS seen while the workload ran, in bytes.
    pub peak_rss: u64,
    /// Server CPU time (user + system) spent during the workload.
    pub cpu: Duration,
}

impl Side {
    /// Server CPU per successful operation, in microseconds.
    pub fn cpu_us_per_op(&self) -> Option<f64> {
        (self.result.ok > 0).then(|| self.cpu.as_secs_f64() * 1e6 / self.result.ok as f64)
    }

    fn json(&self) -> Object {
        Object::new()
            .object("result", self.result.json())
            .u64("peak_rss_bytes", self.peak_rss)
            .f64("cpu_s", self.cpu.as_secs_f64())
            .opt_f64("cpu_us_per_op", self.cpu_us_per_op())
    }
}

/// Both servers on one workload, rounds merged.
#[derive(Debug, Clone)]
pub struct CompareRow {
    pub label: String,
    pub a: Side,
    pub b: Side,
}

impl CompareRow {
    /// B's throughput over A's: above 1 means B is faster.
    pub fn throughput_ratio(&self) -> Option<f64> {
        ratio(self.b.result.throughput(), self.a.result.throughput())
    }

    /// B's median latency over A's: below 1 means B answers sooner.
    pub fn p50_ratio(&self) -> Option<f64> {
        let (a, b) = (
            self.a.result.latency.summary(),
            self.b.result.latency.summary(),
        );
        ratio(b.p50_us as f64, a.p50_us as f64)
    }

    pub fn p99_ratio(&self) -> Option<f64> {
        let (a, b) = (
            self.a.result.latency.summary(),
            self.b.result.latency.summary(),
        );
        ratio(b.p99_us as f64, a.p99_us as f64)
    }
}

/// Per-server figures measured once per compare.
#[derive(Debug, Clone)]
pub struct ServerTotals {
    pub name: String,
    /// Size of the data dir after every workload ran.
    pub db_bytes: u64,
    /// Stop, restart on the same data, time until a Range succeeds.
    pub restart: Result<Duration, String>,
    /// VmRSS once every workload ran (after a short settle).
    pub rss_loaded: u64,
    /// VmRSS after the restart, once it answered (after the same settle).
    pub rss_restarted: u64,
}

impl Default for ServerTotals {
    fn default() -> Self {
        ServerTotals {
            name: String::new(),
            db_bytes: 0,
            restart: Err("not measured".into()),
            rss_loaded: 0,
            rss_restarted: 0,
        }
    }
}

/// Everything a compare measured.
#[derive(Debug, Clone)]
pub struct CompareReport {
    pub rounds: u32,
    pub rows: Vec<CompareRow>,
    pub a: ServerTotals,
    pub b: ServerTotals,
    pub fsync: FsyncFloor,
    pub rtt: LoopbackRtt,
}

/// The single-client put target's bound: 1.5 x (fdatasync floor + one loopback round trip), at
/// the p50 of both, in milliseconds.
pub fn single_put_bound_ms(fsync: &FsyncFloor, rtt: &LoopbackRtt) -> f64 {
    1.5 * (ms(fsync.p50_us) + rtt.p50_ns as f64 / 1e6)
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}x"))
}

impl CompareReport {
    pub fn text(&self) -> String {
        let (na, nb) = (&self.a.name, &self.b.name);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "disk floor (4 KiB {} write + fdatasync, n={}): p50 {:.3} ms  p99 {:.3} ms",
            self.fsync.mode(),
            self.fsync.samples,
            ms(self.fsync.p50_us),
            ms(self.fsync.p99_us)
        );
        let _ = writeln!(
            s,
            "loopback round trip (TCP, 64 B, n={}): p50 {:.3} ms  p99 {:.3} ms; \
             single-client put bound 1.5 x (floor + round trip) = {:.3} ms",
            self.rtt.samples,
            self.rtt.p50_ns as f64 / 1e6,
            self.rtt.p99_ns as f64 / 1e6,
            single_put_bound_ms(&self.fsync, &self.rtt)
        );
        let _ = writeln!(
            s,
            "A = {na}, B = {nb}; {} round(s) each, interleaved A B A B; ratios are B/A \
             (throughput: >1 B faster; latency: <1 B faster)\n",
            self.rounds
        );
        let _ = writeln!(
            s,
            "{:<16} {:>10} {:>10} {:>7} | {:>8} {:>8} {:>7} | {:>8} {:>8} {:>7} | {:>7} {:>7} | {:>8} {:>8} | {:>6}",
            "workload",
            "A ops/s",
            "B ops/s",
            "ratio",
            "A p50ms",
            "B p50ms",
            "ratio",
            "A p99ms",
            "B p99ms",
            "ratio",
            "A MiB",
            "B MiB",
            "A cpu/op",
            "B cpu/op",
            "ok"
        );
        for row in &self.rows {
            let (sa, sb) = (
                row.a.result.latency.summary(),
                row.b.result.latency.summary(),
            );
            let cpu = |side: &Side| {
                side.cpu_us_per_op()
                    .map_or("-".into(), |c| format!("{c:.0}us"))
            };
            let ok = row.a.result.all_ok() && row.b.result.all_ok();
            let _ = writeln!(
                s,
                "{:<16} {:>10.1} {:>10.1} {:>7} | {:>8.3} {:>8.3} {:>7} | {:>8.3} {:>8.3} {:>7} | {:>7.1} {:>7.1} | {:>8} {:>8} | {:>6}",
                row.label,
                row.a.result.throughput(),
                row.b.result.throughput(),
                fmt_ratio(row.throughput_ratio()),
                ms(sa.p50_us),
                ms(sb.p50_us),
                fmt_ratio(row.p50_ratio()),
                ms(sa.p99_us),
                ms(sb.p99_us),
                fmt_ratio(row.p99_ratio()),
                row.a.peak_rss as f64 / MIB,
                row.b.peak_rss as f64 / MIB,
                cpu(&row.a),
                cpu(&row.b),
                if ok { "yes" } else { "NO" }
            );
        }
        let _ = writeln!(s);
        for t in [&self.a, &self.b] {
            let restart = match &t.restart {
                Ok(d) => format!("{:.3} s", d.as_secs_f64()),
                Err(e) => format!("failed: {e}"),
            };
            let _ = writeln!(
                s,
                "{}: data dir {:.1} MiB after all workloads; RSS {:.1} MiB; restart to first \
                 Range {restart}; RSS after restart {:.1} MiB",
                t.name,
                t.db_bytes as f64 / MIB,
                t.rss_loaded as f64 / MIB,
                t.rss_restarted as f64 / MIB
            );
        }
        for row in &self.rows {
            for side in [&row.a, &row.b] {
                for e in &side.result.error_samples {
                    let _ = writeln!(s, "{} error: {e}", row.label);
                }
            }
        }
        s
    }

    pub fn json(&self) -> String {
        let totals = |t: &ServerTotals| {
            let o = Object::new()
                .str("name", &t.name)
                .u64("db_bytes", t.db_bytes)
                .u64("rss_loaded_bytes", t.rss_loaded)
                .u64("rss_restarted_bytes", t.rss_restarted);
            match &t.restart {
                Ok(d) => o.f64("restart_s", d.as_secs_f64()),
                Err(e) => o.str("restart_error", e),
            }
        };
        Object::new()
            .u64("rounds", u64::from(self.rounds))
            .object(
                "fsync_floor_us",
                Object::new()
                    .u64("samples", self.fsync.samples as u64)
                    .u64("p50", self.fsync.p50_us)
                    .u64("p99", self.fsync.p99_us)
                    .str("mode", self.fsync.mode()),
            )
            .object(
                "loopback_rtt_ns",
                Object::new()
                    .u64("samples", self.rtt.samples as u64)
                    .u64("p50", self.rtt.p50_ns)
                    .u64("p99", self.rtt.p99_ns),
            )
            .f64(
                "single_put_bound_ms",
                single_put_bound_ms(&self.fsync, &self.rtt),
            )
            .object("a", totals(&self.a))
            .object("b", totals(&self.b))
            .objects(
                "workloads",
                self.rows
                    .iter()
                    .map(|r| {
                        Object::new()
                            .str("workload", &r.label)
                            .object("a", r.a.json())
                            .object("b", r.b.json())
                            .opt_f64("throughput_ratio", r.throughput_ratio())
                            .opt_f64("p50_ratio", r.p50_ratio())
                            .opt_f64("p99_ratio", r.p99_ratio())
                    })
                    .collect(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(ok: u64, secs: u64, latency_us: u64) -> RunResult {
        let mut r = RunResult::new("put", "put --total 1", ok);
        r.ok = ok;
        r.elapsed = Duration::from_secs(secs);
        for _ in 0..ok {
            r.latency.record(Duration::from_micros(latency_us));
        }
        r
    }

    fn side(r: RunResult) -> Side {
        Side {
            result: r,
            peak_rss: 64 << 20,
            cpu: Duration::from_millis(500),
        }
    }

    #[test]
    fn throughput_and_absorb() {
        let mut a = result(100, 2, 1000);
        assert_eq!(a.throughput(), 50.0);
        assert!(a.all_ok());
        let mut b = result(300, 2, 1500);
        b.errors = 1;
        b.note_error("boom".into());
        a.absorb(&b);
        assert_eq!((a.requests, a.ok, a.errors), (400, 400, 1));
        assert_eq!(a.throughput(), 100.0);
        assert_eq!(a.latency.summary().p50_us, 1500);
        assert_eq!(a.error_samples, vec!["boom".to_string()]);
        assert!(!a.all_ok());
        assert!(a.text().contains("throughput 100.0/s"));
        assert!(a.json().finish().contains("\"throughput\":100"));
    }

    #[test]
    fn compare_ratios_and_table() {
        let row = CompareRow {
            label: "put".into(),
            a: side(result(100, 1, 2000)),
            b: side(result(300, 1, 500)),
        };
        assert_eq!(row.throughput_ratio(), Some(3.0));
        assert_eq!(row.p50_ratio(), Some(0.25));
        assert_eq!(row.p99_ratio(), Some(0.25));
        assert_eq!(row.a.cpu_us_per_op(), Some(5000.0));
        let report = CompareReport {
            rounds: 2,
            rows: vec![row],
            a: ServerTotals {
                name: "etcd".into(),
                db_bytes: 1 << 20,
                restart: Ok(Duration::from_millis(1500)),
                rss_loaded: 64 << 20,
                rss_restarted: 80 << 20,
            },
            b: ServerTotals {
                name: "keelson".into(),
                ..Default::default()
            },
            fsync: FsyncFloor {
                samples: 10,
                p50_us: 1500,
                p99_us: 3000,
                direct: true,
            },
            rtt: LoopbackRtt {
                samples: 10,
                p50_ns: 500_000,
                p99_ns: 900_000,
            },
        };
        let text = report.text();
        assert!(text.contains("3.00x") && text.contains("0.25x"), "{text}");
        assert!(text.contains("Range 1.500 s"), "{text}");
        assert!(
            text.contains("RSS 64.0 MiB") && text.contains("after restart 80.0 MiB"),
            "{text}"
        );
        assert!(text.contains("failed: not measured"), "{text}");
        // 1.5 x (1.5 ms floor + 0.5 ms round trip).
        assert!(
            text.contains("put bound 1.5 x (floor + round trip) = 3.000 ms"),
            "{text}"
        );
        let json = report.json();
        assert!(json.contains("\"throughput_ratio\":3"), "{json}");
        assert!(json.contains("\"rss_loaded_bytes\":67108864"), "{json}");
        assert!(json.contains("\"single_put_bound_ms\":3"), "{json}");
        assert!(
            json.contains("\"restart_error\":\"not measured\""),
            "{json}"
        );
    }

    #[test]
    fn zero_baselines_give_no_ratio() {
        let row = CompareRow {
            label: "x".into(),
            a: side(RunResult::new("x", "x", 0)),
            b: side(result(1, 1, 10)),
        };
        assert_eq!(row.throughput_ratio(), None);
        assert_eq!(row.p50_ratio(), None);
        assert_eq!(fmt_ratio(None), "-");
    }
}
