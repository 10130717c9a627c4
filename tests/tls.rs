//! The TLS-secured endpoint as production runs it: amqps with certificates made by the
//! test (rcgen), TLS 1.2/1.3 only, mutual TLS with SASL EXTERNAL mapping the client
//! certificate to a user, and certificate reload without dropping open connections.

mod common;

use common::tls::{server_certificate, Leaf, Pki};
use common::{reply_code, start_custom, within, TestBroker};
use lapin::options::*;
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren::broker::admin::PasswordSpec;
use warren::Config;

fn tls_config(pki: &Pki, server: &Leaf) -> Config {
    let (cert, key, ca) = pki.write_server(server);
    Config {
        tls_cert: Some(cert),
        tls_key: Some(key),
        tls_ca: Some(ca),
        ..Config::default()
    }
}

async fn start_tls(config: Config) -> TestBroker {
    start_custom(config, tempfile::tempdir().unwrap(), false, true).await
}

async fn lapin_tls(
    b: &TestBroker,
    pki: &Pki,
    query: &str,
    identity: Option<&Leaf>,
) -> Result<Connection, lapin::Error> {
    let port = b.tls_addr.unwrap().port();
    let url = format!("amqps://guest:guest@localhost:{port}/%2f{query}");
    let config = OwnedTLSConfig {
        identity: identity.map(|l| OwnedIdentity::PKCS8 {
            pem: l.cert_pem.clone().into_bytes(),
            key: l.key_pem.clone().into_bytes(),
        }),
        cert_chain: Some(pki.ca_pem.clone()),
    };
    Connection::connect_with_config(
        &url,
        ConnectionProperties::default(),
        config,
        lapin::runtime::default_runtime().unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn lapin_publishes_and_consumes_over_amqps() {
    let pki = Pki::new("shop CA");
    let b = start_tls(tls_config(&pki, &pki.server("broker"))).await;
    let conn = within(lapin_tls(&b, &pki, "", None)).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "orders".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "".into(),
        "orders".into(),
        BasicPublishOptions::default(),
        b"order over tls",
        Default::default(),
    )
    .await
    .unwrap();
    let got = within(async {
        loop {
            if let Some(m) = ch
                .basic_get("orders".into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                return m;
            }
        }
    })
    .await;
    assert_eq!(got.delivery.data, b"order over tls");
    b.stop().await;
}

/// A TLS 1.1 ClientHello, as an old client sends it: no supported_versions extension.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // two CBC suites
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut hs = vec![0x01, 0x00];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_1_1_is_refused_with_a_fatal_alert_and_1_2_and_1_3_are_accepted() {
    let pki = Pki::new("shop CA");
    let b = start_tls(tls_config(&pki, &pki.server("broker"))).await;
    let addr = b.tls_addr.unwrap();

    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&tls11_client_hello()).await.unwrap();
    let mut reply = vec![0u8; 7];
    within(s.read_exact(&mut reply)).await.unwrap();
    assert_eq!(
        reply[0], 0x15,
        "an alert record, not a ServerHello: {reply:?}"
    );
    assert_eq!(reply[5], 2, "fatal");
    // rustls answers handshake_failure (40) where OpenSSL says protocol_version (70)
    assert!([40, 70].contains(&reply[6]), "alert {}", reply[6]);

    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let cert = server_certificate(addr, pki.client_config_with(&[version], None)).await;
        assert!(cert.is_ok(), "{version:?}: {cert:?}");
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chosen_cipher_suites_are_the_only_ones_offered() {
    let pki = Pki::new("shop CA");
    let mut config = tls_config(&pki, &pki.server("broker"));
    config.tls_versions = vec!["tlsv1.2".into()];
    config.tls_ciphers = vec!["ECDHE-ECDSA-AES256-GCM-SHA384".into()];
    let b = start_tls(config).await;
    let tcp = tokio::net::TcpStream::connect(b.tls_addr.unwrap())
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(pki.client_config(None))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let suite = tls.get_ref().1.negotiated_cipher_suite().unwrap();
    assert_eq!(
        format!("{:?}", suite.suite()),
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_log_in_with_sasl_external() {
    let pki = Pki::new("shop CA");
    let mut config = tls_config(&pki, &pki.server("broker"));
    config.tls_verify_peer = true;
    config.tls_fail_if_no_peer_cert = true;
    let b = start_tls(config).await;
    let s = b.state();
    s.put_user("orders-service", PasswordSpec::None, vec![])
        .await
        .unwrap();
    s.set_permissions("orders-service", "/", ".*", ".*", ".*")
        .await
        .unwrap();

    // no certificate: the TLS handshake itself fails
    assert!(within(lapin_tls(&b, &pki, "", None)).await.is_err());
    // a certificate from another CA: refused too
    let stranger_ca = Pki::new("other CA");
    let stranger = stranger_ca.client("orders-service");
    assert!(within(lapin_tls(
        &b,
        &pki,
        "?auth_mechanism=external",
        Some(&stranger)
    ))
    .await
    .is_err());

    let client = pki.client("orders-service");
    let conn = within(lapin_tls(
        &b,
        &pki,
        "?auth_mechanism=external",
        Some(&client),
    ))
    .await
    .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "orders".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    // a certificate for a user that does not exist: 403 at login
    let ghost = pki.client("nobody");
    let err = within(lapin_tls(
        &b,
        &pki,
        "?auth_mechanism=external",
        Some(&ghost),
    ))
    .await
    .unwrap_err();
    assert_eq!(reply_code(&err), Some(403));
    // with a certificate, PLAIN still works for users with passwords
    within(lapin_tls(&b, &pki, "", Some(&ghost))).await.unwrap();
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reloaded_certificate_serves_new_connections_and_a_bad_one_is_refused() {
    let pki = Pki::new("shop CA");
    let first = pki.server("broker-2026");
    let b = start_tls(tls_config(&pki, &first)).await;
    let addr = b.tls_addr.unwrap();
    let open = within(lapin_tls(&b, &pki, "", None)).await.unwrap();
    assert_eq!(
        server_certificate(addr, pki.client_config(None))
            .await
            .unwrap(),
        first.der
    );

    let second = pki.server("broker-2027");
    pki.write_server(&second);
    assert!(b.broker.as_ref().unwrap().reload_tls().unwrap());
    assert_eq!(
        server_certificate(addr, pki.client_config(None))
            .await
            .unwrap(),
        second.der
    );
    // the connection opened before the reload keeps working
    let ch = open.create_channel().await.unwrap();
    ch.queue_declare(
        "still-here".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    std::fs::write(
        pki.path("server.pem"),
        "-----BEGIN CERTIFICATE-----\ngarbage\n",
    )
    .unwrap();
    let err = b.broker.as_ref().unwrap().reload_tls().unwrap_err();
    assert!(err.to_string().contains("server.pem"), "{err}");
    assert_eq!(
        server_certificate(addr, pki.client_config(None))
            .await
            .unwrap(),
        second.der
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_unreadable_certificate_files_stop_start_up_with_their_name() {
    let pki = Pki::new("shop CA");
    let config = Config {
        tls_cert: Some(pki.path("absent.pem")),
        tls_key: Some(pki.path("absent.key")),
        ..Config::default()
    };
    let err = warren::Broker::builder()
        .config(config)
        .listen_tls("127.0.0.1:0".parse().unwrap())
        .data_dir(tempfile::tempdir().unwrap().path())
        .start()
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("absent.pem"), "{err}");
    let err = warren::Broker::builder()
        .listen_tls("127.0.0.1:0".parse().unwrap())
        .data_dir(tempfile::tempdir().unwrap().path())
        .start()
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("tls_cert"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_runs_tls_only_with_the_docker_user_and_reloads_on_sighup() {
    let pki = Pki::new("shop CA");
    let first = pki.server("first");
    let (cert, key, _) = pki.write_server(&first);
    let data = tempfile::tempdir().unwrap();
    let (child, addrs, log) = common::process::spawn_with(
        &[
            "--amqps-listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--management-listen",
            "127.0.0.1:0",
            "--prometheus-listen",
            "none",
            "--data-dir",
            data.path().to_str().unwrap(),
        ],
        &[
            ("RABBITMQ_DEFAULT_USER", "shop"),
            ("RABBITMQ_DEFAULT_PASS", "s3cret"),
            ("RABBITMQ_DEFAULT_VHOST", "orders"),
        ],
        &[
            "listening for AMQPS (TLS) on ",
            "management API listening on ",
        ],
    );
    assert!(
        !log.iter().any(|l| l.contains("listening for AMQP on")),
        "no plaintext listener: {log:?}"
    );
    let child = common::process::KillOnDrop(child);
    let (tls_addr, http) = (addrs[0], format!("http://{}", addrs[1]));

    // the image's variables made an administrator with full access to its vhost, no guest
    let api = common::http::Api::new(&http, "shop", "s3cret");
    let (status, who) = api.get("/api/whoami").await;
    assert_eq!(
        (status, who["tags"].clone()),
        (200, serde_json::json!(["administrator"]))
    );
    assert_eq!(api.get("/api/users/guest").await.0, 404);
    let url = |user: &str, pass: &str| {
        format!("amqps://{user}:{pass}@localhost:{}/orders", tls_addr.port())
    };
    let tls = || OwnedTLSConfig {
        identity: None,
        cert_chain: Some(pki.ca_pem.clone()),
    };
    let rt = || lapin::runtime::default_runtime().unwrap();
    let conn = within(Connection::connect_with_config(
        &url("shop", "s3cret"),
        ConnectionProperties::default(),
        tls(),
        rt(),
    ))
    .await
    .unwrap();
    let err = within(Connection::connect_with_config(
        &url("guest", "guest"),
        ConnectionProperties::default(),
        tls(),
        rt(),
    ))
    .await
    .unwrap_err();
    assert_eq!(reply_code(&err), Some(403));

    // SIGHUP: the new certificate for new connections, the open one keeps going
    let second = pki.server("second");
    pki.write_server(&second);
    let hup = || {
        assert!(std::process::Command::new("kill")
            .args(["-HUP", &child.0.id().to_string()])
            .status()
            .unwrap()
            .success())
    };
    hup();
    within(async {
        while server_certificate(tls_addr, pki.client_config(None))
            .await
            .unwrap()
            != second.der
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    conn.create_channel().await.unwrap();
    // a broken key is refused: the broker keeps serving the second certificate
    std::fs::write(pki.path("server.key"), "not a key").unwrap();
    hup();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        server_certificate(tls_addr, pki.client_config(None))
            .await
            .unwrap(),
        second.der
    );
    let mut child = child;
    assert!(child.0.try_wait().unwrap().is_none(), "still running");
}

/// A load balancer's health checks on a TLS endpoint: the amqps listener is there, and the
/// certificate check fails once the window reaches the certificate's expiry (rcgen's
/// certificates run to the year 4096), naming the listener and the files.
#[tokio::test(flavor = "multi_thread")]
async fn health_checks_see_the_tls_listener_and_its_certificate_expiry() {
    let pki = Pki::new("shop-ca");
    let config = tls_config(&pki, &pki.server("broker"));
    let b = start_custom(config, tempfile::tempdir().unwrap(), true, true).await;
    let api = common::http::Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let check = "/api/health/checks";
    let (status, body) = api.get(&format!("{check}/protocol-listener/amqps")).await;
    assert_eq!((status, body["protocol"].as_str()), (200, Some("amqp/ssl")));
    let (status, body) = api.get(&format!("{check}/protocol-listener/stomp")).await;
    assert_eq!(status, 503);
    assert_eq!(body["missing"], "stomp");
    assert_eq!(
        api.get(&format!("{check}/certificate-expiration/1/months"))
            .await
            .0,
        200
    );
    let (status, body) = api
        .get(&format!("{check}/certificate-expiration/3000/years"))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["reason"], "Certificates expiring");
    assert_eq!(body["expired"][0]["port"], b.tls_addr.unwrap().port());
    assert!(body["expired"][0]["certfile_expires_on"][0]
        .as_str()
        .unwrap()
        .contains("4096"));
    let (status, body) = api
        .get(&format!("{check}/certificate-expiration/1/fortnights"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["reason"],
        "Time unit not recognised. Supported units: days, weeks, months, years."
    );
    let (_, body) = api
        .get(&format!("{check}/node-is-mirror-sync-critical"))
        .await;
    assert_eq!(body["status"], "ok");
    b.stop().await;
}

/// An operator looks up a service's amqps connection in the management API (and so in the
/// web UI): the TLS version and suite as RabbitMQ names them, the client certificate's
/// subject and issuer, and the bytes that went each way.
#[tokio::test(flavor = "multi_thread")]
async fn a_tls_connection_shows_its_protocol_cipher_and_client_certificate() {
    let pki = Pki::new("shop CA");
    let mut config = tls_config(&pki, &pki.server("broker"));
    config.tls_verify_peer = true;
    let b = start_custom(config, tempfile::tempdir().unwrap(), true, true).await;
    let api = common::http::Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let client = pki.client("payments-service");
    let conn = within(lapin_tls(&b, &pki, "", Some(&client)))
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "payments".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    let (status, list) = api.get("/api/connections").await;
    assert_eq!(status, 200);
    let c = &list[0];
    assert_eq!(c["ssl"], true);
    assert_eq!(c["ssl_protocol"], "tlsv1.3");
    assert_eq!(c["ssl_key_exchange"], "any");
    assert_eq!(c["ssl_hash"], "aead");
    assert!(
        c["ssl_cipher"].as_str().unwrap().contains("gcm")
            || c["ssl_cipher"].as_str().unwrap().contains("poly1305"),
        "{c}"
    );
    assert!(
        c["peer_cert_subject"]
            .as_str()
            .unwrap()
            .contains("CN=payments-service"),
        "{c}"
    );
    assert!(
        c["peer_cert_issuer"]
            .as_str()
            .unwrap()
            .contains("CN=shop CA"),
        "{c}"
    );
    assert!(c["peer_cert_validity"].as_str().unwrap().contains("4096"));
    // the handshake, tune, open and declare went each way
    assert!(c["recv_oct"].as_u64().unwrap() > 0, "{c}");
    assert!(c["send_oct"].as_u64().unwrap() > 0, "{c}");
    assert!(c["recv_cnt"].as_u64().unwrap() >= 2, "{c}");
    assert!(c["recv_oct_details"]["rate"].is_number());

    // a plain connection says so, with no TLS fields filled in
    let plain = b.connect().await;
    let (_, list) = api.get("/api/connections").await;
    let p = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["ssl"] == false)
        .expect("the plain connection");
    assert!(p["ssl_protocol"].is_null(), "{p}");
    assert!(p["peer_cert_subject"].is_null(), "{p}");
    drop(plain);
    b.stop().await;
}
