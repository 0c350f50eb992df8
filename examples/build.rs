//! With feature `web`: generates `grpc_echo`'s client and server from
//! `proto/echo.proto`, with the protoc binary that `protoc-bin-vendored`
//! ships (no system protoc needed).

fn main() {
    #[cfg(feature = "web")]
    {
        let protoc =
            protoc_bin_vendored::protoc_bin_path().expect("protoc-bin-vendored has a protoc for this platform");
        let mut config = tonic_prost_build::Config::new();
        config.protoc_executable(protoc);
        tonic_prost_build::configure()
            // tonic's `transport` (Tokio's runtime) is not built: the
            // client is made from any HTTP/2 service with `new`.
            .build_transport(false)
            .compile_with_config(config, &["proto/echo.proto"], &["proto"])
            .expect("proto/echo.proto compiles");
    }
}
