//! Compiles the .proto files with protox (pure Rust: no `protoc` needed) and generates prost
//! messages and tonic clients/servers into OUT_DIR.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/vizierapi.proto",
        "proto/cloudapi.proto",
        "proto/vzconn.proto",
        "proto/vizier_cluster.proto",
        // Pixie's public API (px.*), with Pixie's names and field numbers.
        "proto/pixie/uuid.proto",
        "proto/pixie/vizierapi.proto",
        "proto/pixie/cloudapi.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::StrictProstCodec")
        // The cloud API's messages are also its REST bodies: same field names, unknown fields refused, absent
        // fields defaulted (the services validate what must be set), maps in a stable order.
        .message_attribute(
            ".loupe.cloud.v1",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default, deny_unknown_fields)]",
        )
        .btree_map(".loupe.cloud.v1")
        .compile_fds(fds)?;
    Ok(())
}
