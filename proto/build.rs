//! Compiles the `.proto` files under `proto/` into Rust.
//!
//! protox parses the files in-process, so building this crate needs no
//! system `protoc`. The parsed descriptor set drives tonic-prost-build and is
//! also written to `OUT_DIR` so the library can embed it for reflection-style
//! consumers.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "etcd/kv.proto",
    "etcd/auth.proto",
    "etcd/rpc.proto",
    "keelson/peer.proto",
    "etcd/v3lock.proto",
    "etcd/v3election.proto",
];
const INCLUDE_DIR: &str = "proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let mut compiler = protox::Compiler::new([INCLUDE_DIR])?;
    // Source info carries the .proto comments into the generated rustdoc.
    compiler.include_source_info(true).include_imports(true);
    for proto in PROTOS {
        compiler.open_file(proto)?;
    }

    std::fs::write(
        out_dir.join("file_descriptor_set.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(compiler.file_descriptor_set())?;

    // Code generation from descriptors watches no files by itself; a
    // directory entry makes cargo rescan everything beneath it.
    println!("cargo:rerun-if-changed={INCLUDE_DIR}");
    Ok(())
}
