//! The logging flags: `--logger`, `--log-outputs` (and the deprecated `--log-output`),
//! `--log-level` and `--debug`, checked as etcd's `setupLogging` checks them, with its messages.
//!
//! Owns: which logger writes where at which level. Never: opens an output or writes a line
//! (`crate::log` does).

use super::go_syntax::go_quote_list;

/// `--logger`: the line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logger {
    /// etcd 3.4's default: text lines, `2006-01-02 15:04:05.000000 I | package: message`.
    Capnslog,
    /// zap's JSON lines: `{"level":"info","ts":...,"caller":...,"msg":...,...}`.
    Zap,
}

/// One `--log-outputs` target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogOutput {
    Stderr,
    Stdout,
    /// `systemd/journal`: Keelson writes to stderr, which systemd sends to the journal.
    Journal,
    /// A file path, opened for appending.
    File(String),
}

/// The word for the default output (stderr), as etcd spells it.
pub const LOG_OUTPUT_DEFAULT: &str = "default";
const LOG_OUTPUT_STDERR: &str = "stderr";
const LOG_OUTPUT_STDOUT: &str = "stdout";
const LOG_OUTPUT_JOURNAL: &str = "systemd/journal";

/// The settled logging setup and the deprecation warnings etcd prints on the way.
pub(super) struct LoggingSetup {
    pub(super) logger: Logger,
    pub(super) outputs: Vec<LogOutput>,
    pub(super) warnings: Vec<String>,
}

/// etcd's `setupLogging`: reconciles `--log-output` with `--log-outputs` and checks the outputs
/// the logger can write. Errors are the reasons etcd puts in `error verifying flags, ...`.
pub(super) fn setup(
    logger: &str,
    deprecated_outputs: &[String],
    outputs: &[String],
    debug: bool,
    level: &str,
) -> Result<LoggingSetup, String> {
    let mut warnings = Vec::new();
    let mut outputs = outputs.to_vec();
    if deprecated_outputs.len() > outputs.len() {
        warnings
            .push("'--log-output' flag has been deprecated! Please use '--log-outputs'!".into());
        outputs = deprecated_outputs.to_vec();
    } else if deprecated_outputs.len() == outputs.len() {
        if outputs.len() > 1 {
            return Err(
                "both '--log-output' and '--log-outputs' are set; only set '--log-outputs'".into(),
            );
        }
        if outputs.is_empty() {
            return Err("either '--log-output' or '--log-outputs' flag must be set".into());
        }
        if deprecated_outputs == outputs && outputs[0] != LOG_OUTPUT_DEFAULT {
            return Err(format!(
                "'--log-output={}' and '--log-outputs={}' are incompatible; only set --log-outputs",
                go_quote_list(deprecated_outputs),
                go_quote_list(&outputs)
            ));
        }
        if deprecated_outputs != [LOG_OUTPUT_DEFAULT] {
            warnings.push(format!(
                "Deprecated '--log-output' flag is set to {}; use '--log-outputs' instead",
                go_quote_list(deprecated_outputs)
            ));
        }
    }
    if debug {
        warnings.push(format!(
            "Deprecated '--debug' flag is set to {debug} (use '--log-level=debug' instead"
        ));
        if level != "debug" {
            warnings.push(format!(
                "Deprecated '--debug' flag is set to {debug} with inconsistent '--log-level={level}' flag"
            ));
        }
    }
    let logger = match logger {
        "capnslog" => Logger::Capnslog,
        "zap" => Logger::Zap,
        other => return Err(format!("unknown logger option {other:?}")),
    };
    let outputs = match logger {
        Logger::Capnslog => {
            let [output] = &outputs[..] else {
                return Err(format!(
                    "--logger=capnslog supports only 1 value in '--log-outputs', got {}",
                    go_quote_list(&outputs)
                ));
            };
            vec![match output.as_str() {
                LOG_OUTPUT_DEFAULT | LOG_OUTPUT_STDERR => LogOutput::Stderr,
                LOG_OUTPUT_STDOUT => LogOutput::Stdout,
                other => {
                    return Err(format!(
                        "unknown log-output {other:?} (only supports {LOG_OUTPUT_DEFAULT:?}, \
                         {LOG_OUTPUT_STDERR:?}, {LOG_OUTPUT_STDOUT:?})"
                    ));
                }
            }]
        }
        Logger::Zap => zap_outputs(&outputs)?,
    };
    Ok(LoggingSetup {
        logger,
        outputs,
        warnings,
    })
}

/// The zap branch of `setupLogging`: `default` only alone, the journal only alone.
fn zap_outputs(outputs: &[String]) -> Result<Vec<LogOutput>, String> {
    if outputs.len() > 1 && outputs.iter().any(|o| o == LOG_OUTPUT_DEFAULT) {
        return Err(format!(
            "multi logoutput for {LOG_OUTPUT_DEFAULT:?} is not supported yet"
        ));
    }
    let journal = outputs.iter().any(|o| o == LOG_OUTPUT_JOURNAL);
    if journal && outputs.len() > 1 {
        return Err(format!(
            "running with systemd/journal but other '--log-outputs' values ({}) are configured \
             with 'default'; override 'default' value with something else",
            go_quote_list(outputs)
        ));
    }
    let mut parsed: Vec<LogOutput> = outputs
        .iter()
        .map(|o| match o.as_str() {
            LOG_OUTPUT_DEFAULT | LOG_OUTPUT_STDERR => LogOutput::Stderr,
            LOG_OUTPUT_STDOUT => LogOutput::Stdout,
            LOG_OUTPUT_JOURNAL => LogOutput::Journal,
            path => LogOutput::File(path.to_string()),
        })
        .collect();
    parsed.dedup();
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogLevel;
    use crate::config::tests::{err, parse};

    fn verify(reason: &str) -> String {
        format!("error verifying flags, {reason}. See 'etcd --help'.")
    }

    #[test]
    fn defaults_and_choices() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.logger, Logger::Capnslog);
        assert_eq!(c.log_outputs, vec![LogOutput::Stderr]);
        let c = parse(&["--logger", "zap", "--log-outputs", "stdout,/tmp/k.log"]).unwrap();
        assert_eq!(c.logger, Logger::Zap);
        assert_eq!(
            c.log_outputs,
            vec![LogOutput::File("/tmp/k.log".into()), LogOutput::Stdout]
        );
        assert_eq!(
            parse(&["--logger=zap", "--log-outputs=systemd/journal"])
                .unwrap()
                .log_outputs,
            vec![LogOutput::Journal]
        );
        let c = parse(&["--debug"]).unwrap();
        assert_eq!(c.log_level, LogLevel::Debug);
        assert!(c.warnings.iter().any(|w| w.contains("'--debug'")));
    }

    #[test]
    fn etcds_messages() {
        assert_eq!(
            err(&["--logger", "bad"]),
            verify("unknown logger option \"bad\"")
        );
        assert_eq!(
            err(&["--log-outputs", "a,default"]),
            verify(
                "--logger=capnslog supports only 1 value in '--log-outputs', got [\"a\" \"default\"]"
            )
        );
        assert_eq!(
            err(&["--log-outputs", "/tmp/x"]),
            verify(
                "unknown log-output \"/tmp/x\" (only supports \"default\", \"stderr\", \"stdout\")"
            )
        );
        assert_eq!(
            err(&["--logger", "zap", "--log-outputs", "a,default"]),
            verify("multi logoutput for \"default\" is not supported yet")
        );
        assert_eq!(
            err(&["--logger", "zap", "--log-outputs", "stderr,systemd/journal"]),
            verify(
                "running with systemd/journal but other '--log-outputs' values ([\"stderr\" \"systemd/journal\"]) are configured with 'default'; override 'default' value with something else"
            )
        );
        assert_eq!(
            err(&["--log-output", "stdout", "--log-outputs", "stdout"]),
            verify(
                "'--log-output=[\"stdout\"]' and '--log-outputs=[\"stdout\"]' are incompatible; only set --log-outputs"
            )
        );
        // The deprecated flag alone still counts, with a warning.
        let c = parse(&["--log-output", "a,b", "--logger", "zap"]).unwrap();
        assert_eq!(
            c.log_outputs,
            vec![LogOutput::File("a".into()), LogOutput::File("b".into())]
        );
    }
}
