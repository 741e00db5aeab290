//! Compiles the .proto files with protox (pure Rust: no `protoc` needed) and generates prost
//! messages and tonic clients/servers into OUT_DIR.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/vizierapi.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
