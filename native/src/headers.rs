//! Which headers cross the proxy, and how big a header list is. Pure.
//!
//! The engine forwards HTTP/2 streams without decoding gRPC, so it keeps what the backend
//! needs to read the body and the call: `te: trailers`, `content-type`, `grpc-encoding` and
//! `grpc-accept-encoding` (the messages stay compressed as the client sent them), and
//! application metadata including `-bin` values. It drops connection-specific headers
//! (RFC 9113 §8.2.2) and those gRPC sets per hop; `grpc-timeout` is replaced by the
//! client's remaining deadline (`deadline.rs`).

use http::HeaderMap;

/// Request headers never forwarded as they came. Compared with the grpcio plane's
/// `HOP_BY_HOP` (`gproxy_mp/worker/proxy.py`), `te`, `content-type`, `grpc-encoding`,
/// `grpc-accept-encoding` and `user-agent` stay: there grpc builds them anew on each hop,
/// here the bytes of the body pass unchanged and the backend must read them the same way.
const REQUEST_DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
    "te",
    "grpc-timeout",
    "grpc-status",
    "grpc-message",
    "grpc-internal-encoding-request",
];

/// Response headers and trailers never forwarded (connection-specific only: the backend's
/// `grpc-status`, `grpc-message` and `grpc-status-details-bin` pass unchanged).
const RESPONSE_DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// The client's request headers to send to the backend (pseudo-headers are not in a
/// `HeaderMap`; the caller sets method, path and authority). `te: trailers` is set again,
/// since gRPC requires it and HTTP/2 allows no other value.
pub fn request_headers(received: &HeaderMap) -> HeaderMap {
    let mut out = filtered(received, REQUEST_DROPPED);
    out.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    out
}

/// The backend's response headers or trailers to send to the client.
pub fn response_headers(received: &HeaderMap) -> HeaderMap {
    filtered(received, RESPONSE_DROPPED)
}

fn filtered(received: &HeaderMap, dropped: &[&str]) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(received.len());
    for (name, value) in received {
        if !dropped.contains(&name.as_str()) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Bytes of a header list as HTTP/2 counts them (RFC 9113 §6.5.2: name, value and 32 per
/// entry), as the grpcio plane counts against `MAX_METADATA_BYTES`.
pub fn list_size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum()
}

/// The gRPC status code of a response's `grpc-status` header or trailer.
pub fn grpc_status(headers: &HeaderMap) -> Option<u8> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    let code: u8 = value.trim().parse().ok()?;
    (code <= 16).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn request_keeps_what_the_backend_needs_and_drops_connection_headers() {
        let got = request_headers(&map(&[
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-encoding", "gzip"),
            ("grpc-accept-encoding", "identity,gzip"),
            ("grpc-timeout", "1S"),
            ("connection", "close"),
            ("host", "x"),
            ("user-agent", "grpc-go/1"),
            ("x-id-bin", "AAEC"),
            ("x-multi", "a"),
            ("x-multi", "b"),
        ]));
        assert_eq!(got.get("content-type").unwrap(), "application/grpc");
        assert_eq!(got.get("te").unwrap(), "trailers");
        assert_eq!(got.get("grpc-encoding").unwrap(), "gzip");
        assert_eq!(got.get("grpc-accept-encoding").unwrap(), "identity,gzip");
        assert_eq!(got.get("user-agent").unwrap(), "grpc-go/1");
        assert_eq!(got.get("x-id-bin").unwrap(), "AAEC");
        assert!(got.get("grpc-timeout").is_none());
        assert!(got.get("connection").is_none());
        assert!(got.get("host").is_none());
        let multi: Vec<_> = got.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["a", "b"]);
    }

    #[test]
    fn te_is_always_trailers_towards_the_backend() {
        let got = request_headers(&map(&[("content-type", "application/grpc")]));
        assert_eq!(got.get("te").unwrap(), "trailers");
    }

    #[test]
    fn response_keeps_status_details_and_metadata() {
        let got = response_headers(&map(&[
            ("grpc-status", "3"),
            ("grpc-message", "bad"),
            ("grpc-status-details-bin", "CAM"),
            ("keep-alive", "x"),
        ]));
        assert_eq!(got.len(), 3);
        assert_eq!(grpc_status(&got), Some(3));
    }

    #[test]
    fn list_size_counts_32_bytes_per_entry() {
        assert_eq!(list_size(&map(&[("ab", "cde")])), 2 + 3 + 32);
    }

    #[test]
    fn grpc_status_rejects_garbage() {
        assert_eq!(grpc_status(&map(&[("grpc-status", "x")])), None);
        assert_eq!(grpc_status(&map(&[("grpc-status", "99")])), None);
        assert_eq!(grpc_status(&HeaderMap::new()), None);
    }
}
