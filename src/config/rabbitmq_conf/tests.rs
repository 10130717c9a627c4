//! Unit tests of the rabbitmq.conf reader: a key is applied, reported as not acted on, or
//! stops start-up naming it, as the module promises. Most read conf text directly; the
//! conf.d test writes its files to a temp dir of its own.

use super::*;

fn conf(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
    let mut c = Config::default();
    let w = apply_files(&mut c, &[("rabbitmq.conf".into(), text.into())])?;
    Ok((c, w))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn the_official_images_file_maps_onto_warren() {
    let (c, warnings) = conf(
        "# as the docker image ships it\n\
         loopback_users.guest = false\n\
         listeners.tcp.default = 5672\n\
         management.tcp.port = 15672\n\
         default_user = shop\n\
         default_pass = s3cret # trailing comment\n\
         default_user_tags.administrator = true\n\
         default_user_tags.monitoring = true\n\
         default_permissions.configure = ^shop\\.\n\
         vm_memory_high_watermark.absolute = 2GB\n\
         disk_free_limit.absolute = 1GiB\n\
         heartbeat = 30\n\
         channel_max = 0\n\
         log.console = true\n\
         log.console.level = warning\n",
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(c.loopback_users.is_empty());
    assert_eq!(c.amqp_listen, vec![addr("0.0.0.0:5672"), addr("[::]:5672")]);
    assert_eq!(
        c.management_listen,
        vec![addr("0.0.0.0:15672"), addr("[::]:15672")]
    );
    assert_eq!(
        (c.default_user.as_str(), c.default_pass.as_str()),
        ("shop", "s3cret")
    );
    assert_eq!(c.default_user_tags, vec!["administrator", "monitoring"]);
    assert_eq!(c.default_permissions_configure, "^shop\\.");
    assert_eq!(c.vm_memory_high_watermark_absolute, 2_000_000_000);
    assert_eq!(c.disk_free_limit, 1 << 30);
    assert_eq!((c.heartbeat, c.channel_max), (30, 65535));
    assert_eq!(c.log_console_level, "warn");
}

#[test]
fn listeners_gather_every_line_and_none_turns_them_off() {
    let (c, _) = conf(
        "listeners.tcp.1 = 127.0.0.1:5673\nlisteners.tcp.2 = ::1:5673\n\
         listeners.ssl.default = 5671\nssl_options.certfile = /etc/c.pem\n\
         ssl_options.keyfile = /etc/k.pem\nssl_options.verify = verify_peer\n\
         ssl_options.fail_if_no_peer_cert = true\nssl_options.versions.1 = tlsv1.3\n\
         prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = 15693\n",
    )
    .unwrap();
    assert_eq!(
        c.amqp_listen,
        vec![addr("127.0.0.1:5673"), addr("[::1]:5673")]
    );
    assert_eq!(
        c.amqps_listen,
        vec![addr("0.0.0.0:5671"), addr("[::]:5671")]
    );
    assert_eq!(
        c.tls_cert.as_deref(),
        Some(std::path::Path::new("/etc/c.pem"))
    );
    assert!(c.tls_verify_peer && c.tls_fail_if_no_peer_cert);
    assert_eq!(c.tls_versions, vec!["tlsv1.3"]);
    assert_eq!(c.prometheus_listen, vec![addr("127.0.0.1:15693")]);
    let (c, _) = conf("listeners.tcp = none\n").unwrap();
    assert!(c.amqp_listen.is_empty());
}

#[test]
fn a_key_rabbitmq_knows_but_warren_ignores_is_named_in_a_warning() {
    let (_, warnings) =
        conf("queue_master_locator = min-masters\nmqtt.listeners.tcp.default = 1883\n").unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("'mqtt.listeners.tcp.default'"),
        "{warnings:?}"
    );
    assert!(warnings[1].contains("'queue_master_locator'") && warnings[1].contains("line 1"));
}

#[test]
fn a_key_rabbitmq_would_reject_stops_start_up_naming_it() {
    let e = conf("heartbeat = 10\nlisteners.tcp.default = 5672\nhearbeat = 3\n").unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("'hearbeat'") && text.contains("line 3"),
        "{text}"
    );
    let e = conf("disk_free_limit.absolute = lots\n").unwrap_err();
    assert!(e.to_string().contains("disk_free_limit.absolute"), "{e}");
    let e = conf("frame_max = 100\n").unwrap_err();
    assert!(
        e.to_string().contains("frame_max") && e.to_string().contains("line 1"),
        "{e}"
    );
    let e = conf("just words\n").unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
    let e = conf("ssl_cert_login_from = distinguished_name\n").unwrap_err();
    assert!(e.to_string().contains("ssl_cert_login_from"), "{e}");
}

#[test]
fn information_units_follow_rabbitmq() {
    assert_eq!(information_unit("1000"), Some(1000));
    assert_eq!(information_unit("50MB"), Some(50_000_000));
    assert_eq!(information_unit("50MiB"), Some(50 << 20));
    assert_eq!(information_unit("2G"), Some(2 << 30));
    assert_eq!(information_unit("2 GB"), None);
    assert_eq!(information_unit("GB"), None);
}

#[test]
fn rabbitmq_variables_of_the_image_are_honoured_and_the_rest_named() {
    let vars: Vec<(String, String)> = [
        ("RABBITMQ_NODENAME", "rabbit@shop-1"),
        ("RABBITMQ_NODE_PORT", "5999"),
        ("RABBITMQ_MNESIA_BASE", "/var/lib/rabbitmq/mnesia"),
        ("RABBITMQ_LOGS", "-"),
        ("RABBITMQ_ERLANG_COOKIE", "secret"),
        ("RABBITMQ_VERSION", "3.10.8"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut c = Config::default();
    let warnings = c.apply_env(vars).unwrap();
    assert_eq!(c.node_name(), "rabbit@shop-1");
    assert_eq!(c.amqp_listen, vec![addr("0.0.0.0:5999"), addr("[::]:5999")]);
    assert_eq!(
        c.data_dir,
        std::path::PathBuf::from("/var/lib/rabbitmq/mnesia/rabbit@shop-1")
    );
    assert_eq!(c.log_file, None);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("RABBITMQ_ERLANG_COOKIE"));
}

#[test]
fn config_files_come_from_rabbitmqs_variables_with_conf_d_after_the_main_file() {
    let dir = std::env::temp_dir().join(format!("warren-conf-{}", std::process::id()));
    let confd = dir.join("conf.d");
    std::fs::create_dir_all(&confd).unwrap();
    std::fs::write(
        dir.join("rabbitmq.conf"),
        "heartbeat = 20\nframe_max = 8192\n",
    )
    .unwrap();
    std::fs::write(confd.join("10-a.conf"), "heartbeat = 25\n").unwrap();
    std::fs::write(confd.join("20-b.conf"), "heartbeat = 35\n").unwrap();
    std::fs::write(confd.join("ignored.txt"), "nonsense\n").unwrap();
    let vars = vec![
        // without its suffix, as RabbitMQ allows
        (
            "RABBITMQ_CONFIG_FILE".to_string(),
            dir.join("rabbitmq").display().to_string(),
        ),
        (
            "RABBITMQ_CONFIG_FILES".to_string(),
            confd.display().to_string(),
        ),
    ];
    let (files, notes) = read_files(&vars).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    let mut c = Config::default();
    apply_files(&mut c, &files).unwrap();
    assert_eq!((c.heartbeat, c.frame_max), (35, 8192));
    let (files, notes) = read_files(&[(
        "RABBITMQ_CONFIG_FILE".to_string(),
        dir.join("absent.conf").display().to_string(),
    )])
    .unwrap();
    assert!(
        files.is_empty() && notes[0].contains("(not found)"),
        "{notes:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_log_directory_alone_gets_rabbitmqs_file_named_after_the_node() {
    let (c, _) = conf("log.dir = /var/log/rabbitmq\nnodename = rabbit@shop-1\n").unwrap();
    assert_eq!(
        c.log_file,
        Some(std::path::PathBuf::from(
            "/var/log/rabbitmq/rabbit@shop-1.log"
        ))
    );
    let (c, _) = conf("log.dir = /var/log/rabbitmq\nlog.file = shop.log\n").unwrap();
    assert_eq!(
        c.log_file,
        Some(std::path::PathBuf::from("/var/log/rabbitmq/shop.log"))
    );

    let vars: Vec<(String, String)> = [
        ("RABBITMQ_NODENAME", "rabbit@shop-2"),
        ("RABBITMQ_LOG_BASE", "/var/log/rabbitmq"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut c = Config::default();
    assert!(c.apply_env(vars).unwrap().is_empty());
    assert_eq!(
        c.log_file,
        Some(std::path::PathBuf::from(
            "/var/log/rabbitmq/rabbit@shop-2.log"
        ))
    );
}
