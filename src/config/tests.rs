use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    f
}

#[test]
fn shipped_config_file_loads_and_matches_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/keepword.toml");
    let s = Settings::load_from(Some(&path), &[]).expect("shipped config is valid");
    let d = Settings::default();
    assert_eq!(s.bind, d.bind);
    assert_eq!(s.database_url, d.database_url);
    assert_eq!(s.contract, d.contract);
    assert_eq!(s.smtp.port, d.smtp.port);
}

#[test]
fn env_overrides_file_with_nesting_and_csv_lists() {
    let f = file("bind = \"127.0.0.1:9000\"\n[smtp]\nport = 2525\n");
    let s = Settings::load_from(
        Some(f.path()),
        &env(&[
            ("KEEPWORD_SMTP__PORT", "2626"),
            ("KEEPWORD_API_TOKENS", "a, b"),
            ("KEEPWORD_DATABASE_URL", "postgres://u@h/db"),
        ]),
    )
    .unwrap();
    assert_eq!(s.bind.port(), 9000);
    assert_eq!(s.smtp.port, 2626);
    assert_eq!(
        s.api_tokens.iter().map(Secret::expose).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(s.database_url, "postgres://u@h/db");
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let f = file("bnd = \"127.0.0.1:9000\"\n");
    let e = Settings::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("bnd"), "{e}");
    let e = Settings::load_from(None, &env(&[("KEEPWORD_SMPT__HOST", "x")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("smpt"), "{e}");
}

#[test]
fn bad_values_are_named_and_secrets_never_shown() {
    let f = file("database_url = \"mysql://root:hunter2@x/db\"\n[smtp]\npassword = \"s3cret\"\n");
    let e = Settings::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("database_url"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let f = file("[smtp]\nport = \"lots\"\n");
    let e = Settings::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("smtp.port"), "{e}");
    let s = Settings::load_from(None, &env(&[("KEEPWORD_SMTP__PASSWORD", "s3cret")])).unwrap();
    assert!(!format!("{s:?}").contains("s3cret"));
}

#[test]
fn secrets_are_read_from_files() {
    let secret = file("from-file\n");
    let f = file(&format!(
        "[smtp]\npassword_file = \"{}\"\n",
        secret.path().display()
    ));
    let s = Settings::load_from(Some(f.path()), &[]).unwrap();
    assert_eq!(s.smtp.password.expose(), "from-file");
    let f = file("[smtp]\npassword_file = \"/nonexistent/secret\"\n");
    let e = Settings::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("smtp.password_file"), "{e}");
}

#[test]
fn numeric_secrets_are_strings_and_never_printed() {
    let s = Settings::load_from(
        None,
        &env(&[
            ("KEEPWORD_GITHUB__WEBHOOK_SECRET", "123456789"),
            ("KEEPWORD_SMTP__PASSWORD", "000123"),
            ("KEEPWORD_DASHBOARD_PASSWORD", "true"),
            ("KEEPWORD_API_TOKENS", "42"),
        ]),
    )
    .expect("numeric-looking secrets are valid");
    assert_eq!(s.github.webhook_secret.expose(), "123456789");
    assert_eq!(s.smtp.password.expose(), "000123", "leading zeros kept");
    assert_eq!(s.dashboard_password.expose(), "true");
    assert_eq!(s.api_tokens, vec![Secret::new("42")]);

    let f = file("[smtp]\npassword = 987654321\n[github]\nwebhook_secret = 55\n");
    let s = Settings::load_from(Some(f.path()), &[]).unwrap();
    assert_eq!(s.smtp.password.expose(), "987654321");
    assert_eq!(s.github.webhook_secret.expose(), "55");

    // A float cannot be taken back to the digits written: refused, and
    // the error does not show it.
    let f = file("[smtp]\npassword = 31415.9265\n");
    let e = Settings::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("smtp.password"), "{e}");
    assert!(!e.contains("31415"), "{e}");
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let f = file("bnd = \"127.0.0.1:9000\"\npublic_url = \"ftp://x\"\n[smtp]\nport = \"lots\"\n");
    let e = Settings::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`bnd`"), "{e}");
    assert!(e.contains("smtp.port") && e.contains("lots"), "{e}");
    assert!(
        e.contains("public_url"),
        "checks after parsing run too: {e}"
    );
    assert!(
        e.contains(&f.path().display().to_string()),
        "names the file: {e}"
    );
    assert_eq!(e.matches("; ").count(), 2, "three problems: {e}");
}

#[test]
fn environment_mistakes_name_the_variable_without_internals() {
    let e = Settings::load_from(
        None,
        &env(&[
            ("KEEPWORD_SMTP__PORT", "lots"),
            ("KEEPWORD_BIND", "nowhere"),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("`KEEPWORD_SMTP__PORT`"), "{e}");
    assert!(e.contains("`KEEPWORD_BIND`"), "{e}");
    assert!(!e.contains("figment"), "{e}");
    assert!(!e.contains("src/config.rs"), "{e}");
    // A wrong secret type from the file is named, its value never shown.
    let f = file("dashboard_password = [\"hunter2\"]\n");
    let e = Settings::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("dashboard_password"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn placeholder_secrets_are_refused_on_a_public_address_and_warned_on_loopback() {
    let mut s = Settings {
        bind: "0.0.0.0:8080".parse().unwrap(),
        ..Default::default()
    };
    let SecretsCheck::Refuse(why) = s.check_secrets_for_bind() else {
        panic!("the defaults on 0.0.0.0 must be refused");
    };
    for named in [
        "api_tokens",
        "github.webhook_secret",
        "dashboard_password",
        "KEEPWORD_API_TOKENS",
        "KEEPWORD_GITHUB__WEBHOOK_SECRET",
        "KEEPWORD_DASHBOARD_PASSWORD",
        "0.0.0.0:8080",
    ] {
        assert!(why.contains(named), "{named} missing from: {why}");
    }

    s.api_tokens = vec![Secret::new("real-token"), Secret::new(PLACEHOLDER_SECRET)];
    s.github.webhook_secret = Secret::new("real-secret");
    s.dashboard_password = Secret::new("real-password");
    let SecretsCheck::Refuse(why) = s.check_secrets_for_bind() else {
        panic!("one placeholder token among real ones is still a way in");
    };
    assert!(why.contains("api_tokens"), "{why}");
    assert!(!why.contains("github.webhook_secret"), "{why}");

    s.api_tokens = vec![Secret::new("real-token")];
    assert_eq!(s.check_secrets_for_bind(), SecretsCheck::Fine);

    for loopback in ["127.0.0.1:8080", "[::1]:8080"] {
        let s = Settings {
            bind: loopback.parse().unwrap(),
            ..Default::default()
        };
        assert!(
            matches!(s.check_secrets_for_bind(), SecretsCheck::Warn(w) if w.contains("api_tokens")),
            "{loopback}"
        );
    }
    let s = Settings {
        bind: "[::]:8080".parse().unwrap(),
        ..Default::default()
    };
    assert!(matches!(
        s.check_secrets_for_bind(),
        SecretsCheck::Refuse(_)
    ));
}

#[test]
fn an_empty_dashboard_password_is_a_config_error() {
    // What a compose file with an unset variable passes.
    let e = Settings::load_from(None, &env(&[("KEEPWORD_DASHBOARD_PASSWORD", "")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`dashboard_password` is empty"), "{e}");
    let f = file("dashboard_password = \"\"\n");
    let e = Settings::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`dashboard_password` is empty"), "{e}");
    let empty = file("");
    let f = file(&format!(
        "dashboard_password_file = \"{}\"\n",
        empty.path().display()
    ));
    let e = Settings::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`dashboard_password` is empty"), "{e}");
}

#[test]
fn the_dashboard_password_and_the_metrics_token_are_read_from_files() {
    let secret = file("a-secret-from-a-file-0123\n");
    let path = secret.path().display().to_string();
    let f = file(&format!(
        "dashboard_password = \"ignored\"\ndashboard_password_file = \"{path}\"\n"
    ));
    let s = Settings::load_from(Some(f.path()), &[]).unwrap();
    assert_eq!(s.dashboard_password.expose(), "a-secret-from-a-file-0123");
    type Read = fn(&Settings) -> &Secret;
    let keys: [(&str, &str, Read); 2] = [
        (
            "KEEPWORD_DASHBOARD_PASSWORD_FILE",
            "dashboard_password_file",
            |s| &s.dashboard_password,
        ),
        ("KEEPWORD_METRICS_TOKEN_FILE", "metrics_token_file", |s| {
            &s.metrics_token
        }),
    ];
    for (var, key, read) in keys {
        let s = Settings::load_from(None, &env(&[(var, &path)])).unwrap();
        assert_eq!(read(&s).expose(), "a-secret-from-a-file-0123", "{var}");
        let e = Settings::load_from(None, &env(&[(var, "/nonexistent/secret")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains(key), "{e}");
    }
}

#[test]
fn a_metrics_token_is_not_short_and_absent_by_default() {
    let e = Settings::load_from(None, &env(&[("KEEPWORD_METRICS_TOKEN", "short-1")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`metrics_token`") && !e.contains("short-1"),
        "{e}"
    );
    let s = Settings::load_from(None, &[]).unwrap();
    assert!(s.metrics_token.is_empty(), "public /metrics by default");
}

#[test]
fn a_short_dashboard_password_is_refused_beyond_loopback() {
    let mut s = Settings {
        bind: "0.0.0.0:8080".parse().unwrap(),
        api_tokens: vec![Secret::new("real-token")],
        ..Default::default()
    };
    s.github.webhook_secret = Secret::new("real-secret");
    for short in ["x", "eleven-char", "ünïcödé-pw"] {
        s.dashboard_password = Secret::new(short);
        let SecretsCheck::Refuse(why) = s.check_secrets_for_bind() else {
            panic!("`{short}` must be refused on 0.0.0.0");
        };
        assert!(why.contains("`dashboard_password`"), "{why}");
        assert!(why.contains("at least 12"), "{why}");
        if short.len() > 3 {
            assert!(!why.contains(short), "never shows the password: {why}");
        }
    }
    s.dashboard_password = Secret::new("twelve-chars");
    assert_eq!(s.check_secrets_for_bind(), SecretsCheck::Fine);
    s.bind = "127.0.0.1:8080".parse().unwrap();
    s.dashboard_password = Secret::new("x");
    assert_eq!(
        s.check_secrets_for_bind(),
        SecretsCheck::Fine,
        "loopback is for development"
    );
}

#[test]
fn ca_files_are_checked_at_load_naming_key_and_path() {
    // Empty means none, as in the shipped file.
    let f = file("[smtp]\nca_file = \"\"\n");
    let s = Settings::load_from(Some(f.path()), &[]).unwrap();
    assert_eq!(s.smtp.ca_file, None);

    let f = file("[smtp]\nca_file = \"/nonexistent/ca.pem\"\n");
    let e = Settings::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`smtp.ca_file`"), "{e}");
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");

    let not_pem = file("just text, no certificate\n");
    let f = file(&format!(
        "[[mailboxes]]\nname = \"support\"\nhost = \"imap.test\"\n\
         username = \"u\"\nca_file = \"{}\"\n",
        not_pem.path().display()
    ));
    let e = Settings::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`mailboxes[0].ca_file`"), "{e}");
    assert!(e.contains("no PEM certificate"), "{e}");
    assert!(e.contains(&not_pem.path().display().to_string()), "{e}");

    let key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pem = file(&ca.pem());
    let f = file(&format!("[smtp]\nca_file = \"{}\"\n", pem.path().display()));
    let s = Settings::load_from(Some(f.path()), &[]).unwrap();
    assert_eq!(s.smtp.ca_file.as_deref(), Some(pem.path()));
}

#[test]
fn retention_is_optional_and_a_bad_period_is_named() {
    assert_eq!(Settings::default().retention.bodies, None);
    let f = file("[retention]\nbodies = \"365d\"\n");
    let s = Settings::load_from(Some(f.path()), &[]).unwrap();
    assert_eq!(s.retention.bodies.map(Days::get), Some(365));
    let s = Settings::load_from(None, &env(&[("KEEPWORD_RETENTION__BODIES", "30d")])).unwrap();
    assert_eq!(s.retention.bodies.map(Days::get), Some(30));
    for bad in ["\"1y\"", "\"0d\"", "\"365\"", "365"] {
        let f = file(&format!("[retention]\nbodies = {bad}\n"));
        let e = Settings::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("retention.bodies"), "{bad}: {e}");
    }
}

#[test]
fn an_explicit_missing_config_file_is_an_error() {
    let e = Settings::load_from(Some(Path::new("/nonexistent/k.toml")), &[]).unwrap_err();
    assert!(matches!(e, ConfigError::Missing(_)));
}
#[test]
fn slack_is_off_until_configured_and_its_secrets_come_from_files() {
    let s = Settings::load_from(None, &[]).unwrap();
    assert!(s.slack.is_none());
    let signing = file("slack-signing-from-file\n");
    let token = file("xoxb-from-file\n");
    let f = file(&format!(
        "[slack]\nsigning_secret_file = \"{}\"\nbot_token_file = \"{}\"\nteam_ids = [\"T0AGENCY\"]\n",
        signing.path().display(),
        token.path().display()
    ));
    let s = Settings::load_from(Some(f.path()), &[]).unwrap();
    let slack = s.slack.unwrap();
    assert_eq!(slack.signing_secret.expose(), "slack-signing-from-file");
    assert_eq!(slack.bot_token.expose(), "xoxb-from-file");
    assert_eq!(slack.api_url, "https://slack.com/api");
    assert_eq!(slack.channel, None);
    assert!(!format!("{slack:?}").contains("xoxb-from-file"), "redacted");

    let f = file(
        "[slack]\nsigning_secret = \"s3cret-value\"\nbot_token = \"xoxp-user-token-value\"\nteam_ids = [\"#agency\"]\napi_url = \"slack.com\"\n",
    );
    let e = Settings::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    for needle in [
        "slack.bot_token",
        "xoxb-",
        "slack.team_ids",
        "slack.api_url",
    ] {
        assert!(e.contains(needle), "{needle}: {e}");
    }
    assert!(
        !e.contains("xoxp-user-token-value") && !e.contains("s3cret-value"),
        "{e}"
    );
    let f = file("[slack]\nsigning_secret = \"x\"\n");
    let e = Settings::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("slack.bot_token") && e.contains("slack.team_ids"),
        "{e}"
    );
}

#[test]
fn ticket_sources_are_off_until_configured_and_need_real_secrets() {
    let s = Settings::load_from(None, &[]).unwrap();
    assert!(s.jira.is_none() && s.linear.is_none() && s.basecamp.is_none());

    let secret = file("jira-secret-from-file\n");
    let f = file(&format!(
        "[jira]\nwebhook_secret_file = \"{}\"\nchannel = \"tickets\"\n\
         [basecamp]\nwebhook_secret = \"0123456789abcdef0\"\ncompany_ids = [796227]\n",
        secret.path().display()
    ));
    let env_secret = [("KEEPWORD_LINEAR__WEBHOOK_SECRET", "1234567890123456")];
    let s = Settings::load_from(Some(f.path()), &env(&env_secret)).unwrap();
    let jira = s.jira.unwrap();
    assert_eq!(jira.webhook_secret.expose(), "jira-secret-from-file");
    assert_eq!(jira.channel.as_deref(), Some("tickets"));
    assert_eq!(
        s.linear.unwrap().webhook_secret.expose(),
        "1234567890123456"
    );
    assert_eq!(s.basecamp.unwrap().company_ids, [796227]);

    // A guessable secret is refused, naming the key.
    let f = file("[basecamp]\nwebhook_secret = \"short\"\n");
    let e = Settings::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("basecamp.webhook_secret"), "{e}");
    assert!(!e.contains("short"), "{e}");
}
