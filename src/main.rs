fn main() {
    println!("keelson {}", env!("CARGO_PKG_VERSION"));
}
