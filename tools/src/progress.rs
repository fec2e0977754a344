//! A one-line progress display on stderr while a workload runs.
//!
//! Drawn only when stderr is a terminal, so logs and test output stay clean;
//! the line is cleared when the workload ends so reports start on a fresh line.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// How often the line is redrawn.
const REDRAW: Duration = Duration::from_millis(250);
/// Width of the bar in characters.
const BAR_WIDTH: usize = 30;

/// Counts finished operations; cheap to clone into every client.
#[derive(Debug, Clone)]
pub struct Progress {
    done: Arc<AtomicU64>,
}

impl Progress {
    pub fn inc(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

/// The redraw task; stop it with [`ProgressLine::finish`].
#[derive(Debug)]
pub struct ProgressLine {
    progress: Progress,
    task: Option<JoinHandle<()>>,
}

impl ProgressLine {
    /// Starts drawing `label` with a bar out of `total` operations.
    pub fn start(label: &str, total: u64) -> Self {
        let progress = Progress {
            done: Arc::new(AtomicU64::new(0)),
        };
        let task = std::io::stderr().is_terminal().then(|| {
            let p = progress.clone();
            let label = label.to_string();
            tokio::spawn(async move {
                let started = Instant::now();
                loop {
                    tokio::time::sleep(REDRAW).await;
                    let line = render(&label, p.done(), total, started.elapsed());
                    let mut err = std::io::stderr().lock();
                    // A failed redraw is cosmetic; the run goes on.
                    let _ = write!(err, "\r{line}");
                    let _ = err.flush();
                }
            })
        });
        ProgressLine { progress, task }
    }

    pub fn counter(&self) -> Progress {
        self.progress.clone()
    }

    /// Stops redrawing and clears the line.
    pub fn finish(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// `put [#########.....] 1200/4000 30% 2400/s 0.5s`
pub fn render(label: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let frac = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).min(1.0)
    };
    let filled = (frac * BAR_WIDTH as f64).round() as usize;
    let rate = done as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    format!(
        "{label} [{}{}] {done}/{total} {:.0}% {rate:.0}/s {:.1}s",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled),
        frac * 100.0,
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_line() {
        let s = render("put", 50, 100, Duration::from_secs(2));
        assert!(s.starts_with("put ["), "{s}");
        assert!(s.contains("50/100 50% 25/s 2.0s"), "{s}");
        assert_eq!(s.matches('#').count(), BAR_WIDTH / 2);
        assert!(render("x", 5, 0, Duration::ZERO).contains("100%"));
    }
}
