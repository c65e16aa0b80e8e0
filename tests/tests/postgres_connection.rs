//! Connecting the Postgres plugin to a real server: TLS required, preferred and refused,
//! a wrong password and an unreachable server, each a clear error that never shows the
//! password.

use ta_persistence::{AgentTask, TaskPersistenceManager, Timestamp};
use ta_persistence_tests::postgres_server::{load_postgres_plugin, PostgresServer, ServerOptions};
use ta_persistence_tests::redis_server::free_port;

fn load_error(vars: &std::collections::BTreeMap<String, String>) -> String {
    match load_postgres_plugin(vars) {
        Ok(_) => panic!("the plugin loaded with {vars:?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_used_verified_and_refused_as_configured() {
    let Some(server) = PostgresServer::maybe_start_with(ServerOptions::default().tls()) else {
        return;
    };
    let db = server.database("tls");
    // Required, with the test CA: works, and the server sees an encrypted connection.
    let store = server.plugin(&db, &[]);
    let task = AgentTask::new("over-tls", "s", "u", Timestamp::now_utc());
    store.create(task.clone()).await.unwrap();
    assert_eq!(store.load("over-tls").await.unwrap(), Some(task));
    assert_eq!(
        server.psql(
            &db,
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'ta-persistence'",
        ),
        "t"
    );
    // Without the CA the certificate does not verify: refused, also when only preferred.
    for mode in ["required", "preferred"] {
        let mut vars = server.vars(&db);
        vars.remove("TA_PG_CA_CERT");
        vars.insert("TA_PG_TLS".into(), mode.into());
        let text = load_error(&vars);
        assert!(
            text.contains("cannot connect to Postgres"),
            "{mode}: {text}"
        );
        assert!(!text.contains(server.password()), "{text}");
    }
}

#[test]
fn tls_required_refuses_a_server_without_it_and_preferred_falls_back() {
    let Some(server) = PostgresServer::maybe_start() else {
        return;
    };
    let db = server.database("plain");
    let mut vars = server.vars(&db);
    vars.insert("TA_PG_TLS".into(), "required".into());
    let text = load_error(&vars);
    assert!(text.contains("cannot connect to Postgres"), "{text}");
    vars.insert("TA_PG_TLS".into(), "preferred".into());
    assert!(load_postgres_plugin(&vars).is_ok());
}

#[test]
fn a_wrong_password_or_no_server_is_a_clear_error_without_the_password() {
    let Some(server) = PostgresServer::maybe_start() else {
        return;
    };
    let db = server.database("auth");
    let mut vars = server.vars(&db);
    vars.insert("TA_PG_PASSWORD".into(), "not-the-password-xyzzy".into());
    let text = load_error(&vars);
    assert!(
        text.contains(&format!("127.0.0.1:{}/{db} as ta", server.port())),
        "{text}"
    );
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(!text.contains("xyzzy"), "{text}");

    vars.insert("TA_PG_PORT".into(), free_port().to_string());
    vars.insert("TA_PG_CONNECT_TIMEOUT_MS".into(), "1000".into());
    let text = load_error(&vars);
    assert!(text.contains("cannot connect to Postgres"), "{text}");
    assert!(!text.contains("xyzzy"), "{text}");

    let mut url = std::collections::BTreeMap::new();
    url.insert(
        "TA_PG_URL".to_owned(),
        format!(
            "postgres://ta:{}@127.0.0.1:{}/{db}?sslmode=disable",
            server.password(),
            server.port()
        ),
    );
    assert!(
        load_postgres_plugin(&url).is_ok(),
        "a URL reaches the server"
    );
}
