//! Who may connect and call: TLS, mutual TLS, bearer tokens, reflection
//! switched off, and the start-up errors of bad security settings. Each test
//! goes through real gRPC on an ephemeral port.

mod common;

use common::{TestServer, pki::Pki, run_to_exit, shipped_model, test_set};
use mnist::proto::v1::{
    GetModelInfoRequest, PredictRequest, classifier_client::ClassifierClient, predict_request::Input,
};
use tonic::{
    Code, Request,
    transport::{Certificate, ClientTlsConfig, Identity},
};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

const TOKEN: &str = "s3cr3t-t0ken-for-tests-0123456789";

fn trusting(pki: &Pki) -> ClientTlsConfig {
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pki.read("ca.pem")))
}

fn with_identity(pki: &Pki, name: &str) -> ClientTlsConfig {
    trusting(pki).identity(Identity::from_pem(pki.read(&format!("{name}.pem")), pki.read(&format!("{name}.key"))))
}

fn token_file(token: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), format!("{token}\n")).unwrap();
    file
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn digit_request() -> (PredictRequest, u32) {
    let data = test_set().take(1);
    let request =
        PredictRequest { id: "0".into(), input: Some(Input::Pixels(data.image(0).to_vec())), ..Default::default() };
    (request, u32::from(data.labels[0]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_a_token_refuse_clients_without_them() {
    let pki = Pki::generate();
    let tokens = token_file(TOKEN);
    let flags = [
        "--tls-cert",
        &pki.arg("server.pem"),
        "--tls-key",
        &pki.arg("server.key"),
        "--auth-token-file",
        tokens.path().to_str().unwrap(),
    ];
    let server = TestServer::start_with_tls(&flags, Some(trusting(&pki))).await;
    let (request, label) = digit_request();

    // Plaintext HTTP/2 to a TLS port gets no gRPC answer at all.
    let plaintext = tonic::transport::Channel::from_shared(format!("http://{}", server.addr)).unwrap();
    if let Ok(channel) = plaintext.connect().await {
        let status = ClassifierClient::new(channel).predict_one(request.clone()).await.unwrap_err();
        assert!(is_transport_failure(&status), "{status:?}");
    }

    // A client that does not trust the server's CA refuses the handshake.
    let untrusting = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(rcgen_self_signed_ca_pem()))
        .domain_name("127.0.0.1");
    match server.try_channel_with(Some(untrusting)).await {
        Err(_) => {}
        Ok(channel) => {
            let status = ClassifierClient::new(channel).predict_one(request.clone()).await.unwrap_err();
            assert!(is_transport_failure(&status), "{status:?}");
        }
    }

    // TLS without the token, or with a wrong one: UNAUTHENTICATED, for every method.
    let mut client = ClassifierClient::new(server.channel().await);
    let status = client.predict_one(request.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("authorization"), "{}", status.message());
    let status = client.predict_one(with_token(request.clone(), "wrong-token-of-some-length")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client.get_model_info(GetModelInfoRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let stream = futures_util::stream::iter([request.clone()]);
    let status = client.predict(stream).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // With both: classified.
    let answer = client.predict_one(with_token(request, TOKEN)).await.unwrap().into_inner();
    assert_eq!(answer.digit, label);

    // Health stays open for probes that carry no credentials.
    let mut health = HealthClient::new(server.channel().await);
    let status = health.check(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner().status;
    assert_eq!(status, ServingStatus::Serving as i32);

    // Reflection is behind the token too.
    assert_eq!(list_services(&server, None).await.unwrap_err(), Code::Unauthenticated);
    assert!(list_services(&server, Some(TOKEN)).await.unwrap().contains(&"mnist.v1.Classifier".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_certificates_from_the_client_ca() {
    let pki = Pki::generate();
    let flags = [
        "--tls-cert",
        &pki.arg("server.pem"),
        "--tls-key",
        &pki.arg("server.key"),
        "--tls-client-ca",
        &pki.arg("ca.pem"),
    ];
    let server = TestServer::start_with_tls(&flags, Some(with_identity(&pki, "client"))).await;
    let (request, label) = digit_request();

    let mut client = ClassifierClient::new(server.channel().await);
    assert_eq!(client.predict_one(request.clone()).await.unwrap().into_inner().digit, label);

    for (who, tls) in [("no certificate", trusting(&pki)), ("an untrusted CA's", with_identity(&pki, "rogue-client"))] {
        // TLS 1.3 reports the refusal after the handshake, on the first call.
        match server.try_channel_with(Some(tls)).await {
            Err(_) => {}
            Ok(channel) => {
                let status = ClassifierClient::new(channel).predict_one(request.clone()).await.unwrap_err();
                assert!(is_transport_failure(&status), "{who}: {status:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_can_be_switched_off() {
    let server = TestServer::start(&["--no-reflection"]).await;
    assert_eq!(list_services(&server, None).await.unwrap_err(), Code::Unimplemented);
    let (request, label) = digit_request();
    assert_eq!(server.client().await.predict_one(request).await.unwrap().into_inner().digit, label);
}

#[test]
fn bad_security_settings_stop_start_up_with_the_file_named() {
    let pki = Pki::generate();
    let model = shipped_model();
    let model = model.to_str().unwrap();
    let (cert, key) = (pki.arg("server.pem"), pki.arg("server.key"));

    let (ok, stderr) = run_to_exit(&["--model", model, "--tls-cert", "/nonexistent/server.pem", "--tls-key", &key]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/server.pem"), "{stderr}");

    // A key that is not a key, and a certificate that is not a certificate.
    let (ok, stderr) = run_to_exit(&["--model", model, "--tls-cert", &cert, "--tls-key", &cert]);
    assert!(!ok);
    assert!(stderr.contains("server.pem") && stderr.contains("private key"), "{stderr}");
    let (ok, stderr) = run_to_exit(&["--model", model, "--tls-cert", &key, "--tls-key", &key]);
    assert!(!ok);
    assert!(stderr.contains("no PEM certificate"), "{stderr}");

    // A certificate with someone else's key.
    let (ok, stderr) = run_to_exit(&["--model", model, "--tls-cert", &cert, "--tls-key", &pki.arg("client.key")]);
    assert!(!ok, "a key that does not match the certificate must be refused: {stderr}");
    assert!(stderr.contains("TLS"), "{stderr}");

    let (ok, stderr) = run_to_exit(&["--model", model, "--tls-cert", &cert]);
    assert!(!ok);
    assert!(stderr.contains("--tls-key"), "{stderr}");

    let (ok, stderr) = run_to_exit(&["--model", model, "--auth-token-file", "/nonexistent/tokens"]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/tokens"), "{stderr}");
    let weak = token_file("hunter2");
    let (ok, stderr) = run_to_exit(&["--model", model, "--auth-token-file", weak.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("at least 16"), "{stderr}");
}

/// A call that failed below gRPC (the connection was refused or closed),
/// as tonic reports it: no server ever answered it.
fn is_transport_failure(status: &tonic::Status) -> bool {
    use std::error::Error;
    matches!(status.code(), Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal)
        && status.source().is_some_and(|source| source.is::<tonic::transport::Error>())
}

/// Lists services by reflection: the names, or the call's status code.
async fn list_services(server: &TestServer, token: Option<&str>) -> Result<Vec<String>, Code> {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let stream = futures_util::stream::iter([ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    }]);
    let request = match token {
        Some(token) => with_token(stream, token),
        None => Request::new(stream),
    };
    let mut responses = reflection.server_reflection_info(request).await.map_err(|s| s.code())?.into_inner();
    match responses.message().await.map_err(|s| s.code())?.and_then(|r| r.message_response) {
        Some(MessageResponse::ListServicesResponse(list)) => Ok(list.service.into_iter().map(|s| s.name).collect()),
        other => panic!("expected a service list, got {other:?}"),
    }
}

/// A CA certificate that signed nothing the server uses.
fn rcgen_self_signed_ca_pem() -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem()
}
