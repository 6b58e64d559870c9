//! Generates `rpcseal.test.Inventory` (server and client) with tonic-build's manual
//! builder, every method on `rpcseal_tonic::SealedCodec`: the code a service gets from
//! `tonic_prost_build::configure().codec_path("rpcseal_tonic::SealedCodec")`.

fn method(name: &str, route: &str, streaming: bool) -> tonic_build::manual::Method {
    let m = tonic_build::manual::Method::builder()
        .name(name)
        .route_name(route)
        .input_type("crate::GetRequest")
        .output_type("crate::Stock")
        .codec_path("rpcseal_tonic::SealedCodec");
    match streaming {
        true => m.client_streaming().server_streaming().build(),
        false => m.build(),
    }
}

fn main() {
    let inventory = tonic_build::manual::Service::builder()
        .name("Inventory")
        .package("rpcseal.test")
        .method(method("get", "Get", false))
        .method(method("chat", "Chat", true))
        .build();
    tonic_build::manual::Builder::new()
        .build_transport(false)
        .compile(&[inventory]);
}
