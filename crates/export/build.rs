//! Compiles the OTLP .proto files with protox (pure Rust: no `protoc`) into prost messages and tonic clients and
//! servers (the servers are the tests' receivers).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/opentelemetry/proto/collector/metrics/v1/metrics_service.proto",
        "proto/opentelemetry/proto/collector/trace/v1/trace_service.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
