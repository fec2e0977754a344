//! etcd serves its metrics in Prometheus's text format 0.0.4; prometheus-client writes
//! OpenMetrics. The two differ only in how a counter is named: OpenMetrics names the family
//! without `_total` and ends with `# EOF`, where etcd's families carry the name of their sample.
//! This turns the one into the other, so `# TYPE` lines read as etcd's and the counters etcd
//! names without `_total` keep their names.
//!
//! Owns: that text rewrite. Never: changes a value.

/// etcd's counters whose names have no `_total`.
const COUNTERS_WITHOUT_TOTAL: &[&str] = &[
    "etcd_server_health_success",
    "etcd_server_health_failures",
    "etcd_server_learner_promote_successes",
];

/// OpenMetrics text from prometheus-client → Prometheus text 0.0.4 with etcd's names.
pub fn to_prometheus_text(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    // The counter family being written: (OpenMetrics name, etcd's sample name).
    let mut counter: Option<(String, String)> = None;
    for line in open_metrics.lines() {
        if line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            counter = (kind == "counter").then(|| {
                let sample = if COUNTERS_WITHOUT_TOTAL.contains(&name) {
                    name.to_string()
                } else {
                    format!("{name}_total")
                };
                (name.to_string(), sample)
            });
            // A TYPE line follows its HELP line: rename the HELP line already written.
            if let Some((family, sample)) = &counter {
                let help = format!("# HELP {family} ");
                if let Some(start) = out.rfind(&help) {
                    out.replace_range(start..start + help.len(), &format!("# HELP {sample} "));
                }
                out.push_str(&format!("# TYPE {sample} counter\n"));
                continue;
            }
        } else if let Some((family, sample)) = &counter
            && let Some(rest) = line.strip_prefix(&format!("{family}_total"))
            && (rest.starts_with(' ') || rest.starts_with('{'))
        {
            out.push_str(sample);
            out.push_str(rest);
            out.push('\n');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    sorted_by_family(&out)
}

/// The family blocks (each from its `# HELP` line) in name order, as etcd's Go registry
/// writes them.
fn sorted_by_family(text: &str) -> String {
    let mut blocks: Vec<&str> = Vec::new();
    let mut start = 0;
    for (at, _) in text.match_indices("# HELP ").filter(|(at, _)| *at > 0) {
        blocks.push(&text[start..at]);
        start = at;
    }
    blocks.push(&text[start..]);
    blocks.sort_by_key(|block| block.split_whitespace().nth(2).unwrap_or(""));
    blocks.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_carry_etcds_names() {
        let open = "# HELP etcd_mvcc_put Total number of puts seen by this member.\n\
                    # TYPE etcd_mvcc_put counter\n\
                    etcd_mvcc_put_total 3\n\
                    # HELP etcd_server_health_success The total number of successful health checks.\n\
                    # TYPE etcd_server_health_success counter\n\
                    etcd_server_health_success_total 2\n\
                    # HELP etcd_server_has_leader Whether or not a leader exists.\n\
                    # TYPE etcd_server_has_leader gauge\n\
                    etcd_server_has_leader 1\n\
                    # EOF\n";
        assert_eq!(
            to_prometheus_text(open),
            "# HELP etcd_mvcc_put_total Total number of puts seen by this member.\n\
             # TYPE etcd_mvcc_put_total counter\n\
             etcd_mvcc_put_total 3\n\
             # HELP etcd_server_has_leader Whether or not a leader exists.\n\
             # TYPE etcd_server_has_leader gauge\n\
             etcd_server_has_leader 1\n\
             # HELP etcd_server_health_success The total number of successful health checks.\n\
             # TYPE etcd_server_health_success counter\n\
             etcd_server_health_success 2\n"
        );
    }
}
