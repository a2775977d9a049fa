//! Links the device-side code paths the browser will use, so the build proves they compile for
//! wasm32: a new MLS client making a key package, and the protocol codecs.

/// Key package bytes made, plus the protocol version (kept so nothing is optimised away).
#[unsafe(no_mangle)]
pub extern "C" fn veche_wasm_smoke() -> usize {
    let mut client = veche_mls::Client::new([7; 32]);
    let made = client.key_packages(1).map(|k| k.iter().map(Vec::len).sum()).unwrap_or(0);
    let frame = veche_protocol::wire::ClientFrame { id: 1, request: veche_protocol::wire::Request::Me }.encode();
    made + frame.len() + usize::from(veche_protocol::PROTOCOL_VERSION)
}
