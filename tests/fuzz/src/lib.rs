//! What the fuzz targets share: one proxy configured with every provider kind (built
//! once per process through the real config path), and the front doors' entry points.

pub mod doors;
pub mod world;

/// Splits `data` into the pieces an upstream's bytes may arrive in: `every` bytes at
/// a time, or all at once when `every` is 0.
pub fn pieces(data: &[u8], every: u8) -> Vec<&[u8]> {
    match every {
        0 => vec![data],
        n => data.chunks(usize::from(n)).collect(),
    }
}

/// What a client must be able to read: SSE whose every `data:` is JSON or `[DONE]`.
pub fn assert_client_sse(body: &[u8]) {
    use understudy::http::sse::{Decoder, Framing};
    let mut events = Vec::new();
    let mut client = Decoder::new(Framing::Sse);
    assert!(client.push(body, &mut events).is_ok() && client.finish(&mut events).is_ok());
    for event in events {
        assert!(
            event.data == "[DONE]" || is_json(event.data.as_bytes()),
            "the client got a data line that is not JSON: {:?}",
            event.data
        );
    }
}

/// Well-formed JSON text. Syntax only: a number too large for an f64 (`1e999`) is
/// still JSON, and a client's own number passes through the proxy as it was written.
pub fn is_json(body: &[u8]) -> bool {
    serde_json::from_slice::<&serde_json::value::RawValue>(body).is_ok()
}
