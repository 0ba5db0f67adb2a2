//! TLS on both sides, with rustls (the `ring` provider; no OpenSSL): the configurations built
//! from PEM, the ones in use, and the handshake failures counted per side.
//!
//! Python stays in control of the files: the worker reads and checks them (bounds, key match,
//! validity: `gproxy_mp/tls_material.py`, the same checks and words as the grpcio plane's) and
//! hands the PEM bytes here (`Engine.set_listener_tls`, `Engine.set_backend_tls`). A
//! configuration is built whole before it is published (`ArcSwapOption`): a new connection
//! takes the one in use when it starts, a connection already open is never broken, and
//! material rustls refuses replaces nothing (the error text goes back to Python, which keeps
//! the old material, logs and counts it as a refused reload). Towards the backends new
//! material also retires the open connections (`Backend::renew`): their calls finish, new
//! calls get new connections, as grpcio's renewed channels do; client connections keep theirs
//! until they close.
//!
//! ALPN offers and accepts "h2" only (gRPC). Mutual TLS: a listener given client CAs requires
//! and verifies a client certificate; towards the backends, a certificate and key are
//! presented when given. The name a backend's certificate must carry is
//! `--backend-tls-server-name` (or the route's server name) when set, else the backend's host
//! (a DNS name or an IP address), as gRPC does.
//!
//! Handshake failures: a listener connection counts once its ClientHello (or whatever bytes
//! came instead, a plaintext client's preface) arrived and the handshake then failed or timed
//! out; a connection closed before that (a TCP probe) is no handshake and is not counted. A
//! backend connect counts when TCP connected and the TLS handshake failed (name, trust,
//! expiry, a client certificate refused, a plaintext backend).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use arc_swap::ArcSwapOption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

const ALPN_H2: &[u8] = b"h2";

/// The configuration towards the backends, and the name their certificates must carry when
/// one is set for all of them.
pub struct BackendTls {
    pub config: Arc<ClientConfig>,
    pub server_name: Option<ServerName<'static>>,
}

impl BackendTls {
    /// The name to verify `address` (`host:port`, `[v6]:port`) against.
    pub fn name_for(&self, address: &str) -> Result<ServerName<'static>, String> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        let host = host_of(address);
        ServerName::try_from(host.to_owned())
            .map_err(|_| format!("{address}: {host:?} is not a name TLS can verify"))
    }
}

/// The engine's TLS state: `None` on a side that speaks plaintext.
#[derive(Default)]
pub struct Tls {
    pub listener: ArcSwapOption<ServerConfig>,
    pub backend: ArcSwapOption<BackendTls>,
    listener_failures: AtomicU64,
    backend_failures: AtomicU64,
}

impl Tls {
    pub fn listener_failed(&self) {
        self.listener_failures.fetch_add(1, Relaxed);
    }

    pub fn backend_failed(&self) {
        self.backend_failures.fetch_add(1, Relaxed);
    }

    /// Handshake failures so far: (listener, backend).
    pub fn failures(&self) -> (u64, u64) {
        (
            self.listener_failures.load(Relaxed),
            self.backend_failures.load(Relaxed),
        )
    }
}

/// rustls 0.23.48 deprecates `ring`'s provider because it has no post-quantum key exchange
/// (aws-lc-rs has); ring is kept on purpose: aws-lc-rs needs cmake and a long C build in the
/// image's builder. Key exchange is X25519 / P-256 / P-384, as gRPC's own TLS offers.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: not PEM certificates ({e})"))?;
    if certificates.is_empty() {
        return Err(format!("{what}: no PEM certificate in it"));
    }
    Ok(certificates)
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("the key: not a PEM private key ({e})"))
}

fn roots(pem: &[u8], what: &str) -> Result<Arc<RootCertStore>, String> {
    let mut store = RootCertStore::empty();
    let (added, _skipped) = store.add_parsable_certificates(certificates(pem, what)?);
    if added == 0 {
        return Err(format!("{what}: no CA certificate rustls can use"));
    }
    Ok(Arc::new(store))
}

/// The listener's configuration: `chain` and `key` (PEM) presented; with `client_ca`, a
/// client certificate issued by one of those CAs is required.
pub fn server_config(
    chain: &[u8],
    key: &[u8],
    client_ca: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, String> {
    let chain = certificates(chain, "the certificate chain")?;
    let key = private_key(key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(
                roots(ca, "the client CAs")?,
                provider(),
            )
            .build()
            .map_err(|e| format!("the client CAs: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate chain and key: {e}"))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// The configuration towards the backends: their certificates must chain to `ca` (PEM); a
/// client certificate (`identity`: chain and key, PEM) is presented when given.
/// `server_name`: the name every backend's certificate must carry; None: each backend's host.
pub fn backend_config(
    ca: &[u8],
    identity: Option<(&[u8], &[u8])>,
    server_name: Option<&str>,
) -> Result<BackendTls, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(ca, "the backend CAs")?);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(
                certificates(chain, "the client certificate chain")?,
                private_key(key)?,
            )
            .map_err(|e| format!("the client certificate chain and key: {e}"))?,
    };
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    let server_name = server_name
        .map(|name| {
            ServerName::try_from(name.to_owned())
                .map_err(|_| format!("{name:?} is not a name TLS can verify"))
        })
        .transpose()?;
    Ok(BackendTls {
        config: Arc::new(config),
        server_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A self-signed P-256 certificate for "localhost" and its key, and another key, made for
    // these tests with `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256`.
    const CERT: &[u8] = include_bytes!("../testdata/localhost.crt");
    const KEY: &[u8] = include_bytes!("../testdata/localhost.key");
    const OTHER_KEY: &[u8] = include_bytes!("../testdata/other.key");

    #[test]
    fn a_listener_configuration_offers_h2_only() {
        let config = server_config(CERT, KEY, None).unwrap();
        assert_eq!(config.alpn_protocols, [b"h2".to_vec()]);
        assert!(server_config(CERT, KEY, Some(CERT)).is_ok());
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let error = server_config(CERT, OTHER_KEY, None).unwrap_err();
        assert!(
            error.starts_with("the certificate chain and key:"),
            "{error}"
        );
    }

    #[test]
    fn material_that_is_not_pem_is_refused_with_what_it_is() {
        let error = server_config(b"hello", KEY, None).unwrap_err();
        assert_eq!(error, "the certificate chain: no PEM certificate in it");
        let error = server_config(CERT, CERT, None).unwrap_err();
        assert!(
            error.starts_with("the key: not a PEM private key"),
            "{error}"
        );
        let error = backend_config(KEY, None, None).err().unwrap();
        assert_eq!(error, "the backend CAs: no PEM certificate in it");
    }

    #[test]
    fn backends_are_verified_against_the_name_set_or_their_host() {
        let tls = backend_config(CERT, Some((CERT, KEY)), None).unwrap();
        assert_eq!(tls.config.alpn_protocols, [b"h2".to_vec()]);
        let name = |address| tls.name_for(address).map(|n| n.to_str().into_owned());
        assert_eq!(name("localhost:443"), Ok("localhost".into()));
        assert_eq!(name("10.0.0.1:443"), Ok("10.0.0.1".into()));
        assert_eq!(name("[::1]:443"), Ok("::1".into()));
        let named = backend_config(CERT, None, Some("api.example")).unwrap();
        assert_eq!(
            named.name_for("10.0.0.1:443").unwrap().to_str(),
            "api.example"
        );
        assert!(backend_config(CERT, None, Some("bad name!")).is_err());
    }
}
