//! keelson-bench: load generator for the etcd v3 gRPC API, and the side by
//! side comparison of Keelson with etcd. See `keelson-bench --help`.

use std::process::ExitCode;

use keelson_tools::args::{self, Command};
use keelson_tools::json::Object;
use keelson_tools::{compare, disk, workloads};

/// mimalloc, as the server uses: the generator shares the machine's cores with the servers it
/// measures, and glibc's malloc was a quarter of its CPU per request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Command::FsyncFloor(spec) => match disk::fsync_floor(&spec.dir, spec.samples) {
            Ok(floor) if spec.json => {
                let o = Object::new()
                    .str("dir", &spec.dir.display().to_string())
                    .u64("samples", floor.samples as u64)
                    .u64("p50_us", floor.p50_us)
                    .u64("p99_us", floor.p99_us)
                    .str("mode", floor.mode());
                println!("{}", o.finish());
                ExitCode::SUCCESS
            }
            Ok(floor) => {
                println!(
                    "4 KiB {} write + fdatasync in {} (n={}): p50 {:.3} ms  p99 {:.3} ms",
                    floor.mode(),
                    spec.dir.display(),
                    floor.samples,
                    floor.p50_us as f64 / 1000.0,
                    floor.p99_us as f64 / 1000.0
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("keelson-bench fsync-floor: {}: {e}", spec.dir.display());
                ExitCode::from(EXIT_USAGE)
            }
        },
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
