//! Statuses the engine writes itself: trailers with `grpc-status` and a percent-encoded
//! `grpc-message`, and Trailers-Only responses (no backend, deadline, limits). Pure but for
//! the one send on the client's stream.

use bytes::Bytes;
use h2::server::SendResponse;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

pub fn status_trailers(code: u8, message: &str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(u16::from(code)));
    if let Ok(value) = HeaderValue::from_str(&percent_encode(message)) {
        trailers.insert("grpc-message", value);
    }
    trailers
}

/// A Trailers-Only response from the engine itself (HTTP 200, `application/grpc`, status).
pub fn trailers_only(respond: &mut SendResponse<Bytes>, code: u8, message: &str) -> u8 {
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    headers.extend(status_trailers(code, message));
    let _ = respond.send_response(response, true);
    code
}

/// grpc-message's encoding (gRPC over HTTP/2): printable ASCII except '%' as is, the rest
/// as %XX of its UTF-8 bytes.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(percent_encode("a b%c\né"), "a b%25c%0A%C3%A9");
    }

    #[test]
    fn status_trailers_carry_code_and_message() {
        let t = status_trailers(14, "no endpoints");
        assert_eq!(t.get("grpc-status").unwrap(), "14");
        assert_eq!(t.get("grpc-message").unwrap(), "no endpoints");
    }
}
