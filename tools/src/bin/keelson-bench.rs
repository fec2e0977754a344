//! keelson-bench: load generator for the etcd v3 gRPC API, and the side by
//! side comparison of Keelson with etcd. See `keelson-bench --help`.

use std::process::ExitCode;

use keelson_tools::args::{self, Command};
use keelson_tools::{compare, workloads};

/// Exit status for a run where some request failed.
const EXIT_REQUESTS_FAILED: u8 = 1;
/// Exit status for bad arguments or a setup failure.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let command = match args::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keelson-bench: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keelson-bench: starting the runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match command {
        Command::Help => {
            print!("{}", args::USAGE);
            ExitCode::SUCCESS
        }
        Command::Run(spec) => {
            let result = runtime.block_on(workloads::run(&spec));
            if spec.global.json {
                println!("{}", result.json().finish());
            } else {
                print!("{}", result.text());
            }
            if result.all_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_REQUESTS_FAILED)
            }
        }
        Command::Compare(spec) => match runtime.block_on(compare::run(&spec)) {
            Ok(report) => {
                if spec.json {
                    println!("{}", report.json());
                } else {
                    print!("{}", report.text());
                }
                let all_ok = report
                    .rows
                    .iter()
                    .all(|r| r.a.result.all_ok() && r.b.result.all_ok());
                if all_ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(EXIT_REQUESTS_FAILED)
                }
            }
            Err(e) => {
                eprintln!("keelson-bench compare: {e}");
                ExitCode::from(EXIT_USAGE)
            }
        },
    }
}
