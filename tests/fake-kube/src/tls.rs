//! The opt-in TLS mode: a CA and a server certificate made at start, and the fake's router served
//! over rustls, for clients that only speak HTTPS (kube-rs's in-cluster config always does).

use std::sync::Arc;

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A fresh CA, and a server certificate it signed for `127.0.0.1` and `localhost`.
pub(crate) struct Certificates {
    /// The CA certificate, PEM: what a client trusts (a kubeconfig's
    /// `certificate-authority-data`, a service account's `ca.crt`).
    pub(crate) ca_pem: String,
    acceptor: TlsAcceptor,
}

impl Certificates {
    pub(crate) fn generate() -> Result<Self> {
        let ca = make_ca()?;
        let server_key = KeyPair::generate().context("making the server's key")?;
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
            .context("the server certificate's names")?;
        params
            .distinguished_name
            .push(DnType::CommonName, "fake-kube");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = params
            .signed_by(&server_key, &ca)
            .context("signing the server certificate")?;
        let chain = vec![
            server_cert.der().clone(),
            CertificateDer::from(ca.der().to_vec()),
        ];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        // The provider named here, not the process-wide default: a test binary may link more
        // than one, and then rustls will not pick.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("rustls protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("the server certificate")?;
        // HTTP/1.1 only, as the plain mode: exec's WebSocket upgrade is an HTTP/1.1 upgrade.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            ca_pem: ca.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}

fn make_ca() -> Result<CertifiedIssuer<'static, KeyPair>> {
    let key = KeyPair::generate().context("making the CA's key")?;
    let mut params = CertificateParams::new(Vec::<String>::new()).context("the CA's params")?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "fake-kube CA");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, key).context("self-signing the CA")
}

/// Serves `app` over TLS on `listener` until the task is aborted. Each connection is HTTP/1.1
/// with upgrades, so exec's WebSocket works as in the plain mode.
pub(crate) async fn serve(listener: TcpListener, certificates: Certificates, app: axum::Router) {
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                eprintln!("fake-kube: accepting a connection failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = certificates.acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            // A client that gives up on the handshake (or does not trust the CA) is its own
            // business: nothing to serve.
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = TowerToHyperService::new(app);
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            if let Err(e) = connection.await {
                if std::env::var_os("FAKE_KUBE_LOG").is_some() {
                    eprintln!("fake-kube: a TLS connection ended: {e}");
                }
            }
        });
    }
}
