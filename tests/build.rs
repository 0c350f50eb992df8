//! With feature `web`: generates the gRPC tests' client and server from
//! `examples/proto/echo.proto` (the `grpc_echo` example's), with the protoc
//! binary that `protoc-bin-vendored` ships (no system protoc needed).

fn main() {
    #[cfg(feature = "web")]
    {
        let protoc =
            protoc_bin_vendored::protoc_bin_path().expect("protoc-bin-vendored has a protoc for this platform");
        let mut config = tonic_prost_build::Config::new();
        config.protoc_executable(protoc);
        tonic_prost_build::configure()
            .build_transport(false)
            .compile_with_config(config, &["../examples/proto/echo.proto"], &["../examples/proto"])
            .expect("examples/proto/echo.proto compiles");
    }
}
