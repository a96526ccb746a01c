//! `cargo xtask new-consumer NAME`: a working consumer of the orders topic,
//! registered everywhere the flow lists its services.
//!
//! It writes `NAME-service/` from the templates in `xtask/templates/`
//! (a migration, a tolerant reader, an effect, the read model's pages, a
//! `main.rs` of one call and an end-to-end test that places an order), then
//! registers it:
//!
//! - its entry in the registry of services (`platform/src/services.rs`),
//!   from which its database and role, its Kafka principal, ACLs and
//!   topics, its page links and the drift checks all follow;
//! - the workspace (`Cargo.toml`), the image (`Dockerfile`,
//!   `.dockerignore`), compose's PostgreSQL (`infra/postgres/init.sql`),
//!   `docker-compose.yml` (its service, and its page URL in every other
//!   service) and the Helm chart's values;
//! - the two sections derived from the declarations (compose's `kafka-init`
//!   commands and the README's configuration table), rewritten by the drift
//!   tests themselves in their bless mode (`ORDERFLOW_BLESS=1`).
//!
//! Every edit is anchored on a line that names what it extends; a file
//! whose anchor is gone is an error naming the file and the anchor, and
//! nothing further is written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use devinfra::workspace_root;
use platform::services;

/// Why no consumer was generated (or not all of it).
#[derive(Debug, thiserror::Error)]
pub enum NewConsumerError {
    /// The name cannot name a service.
    #[error(
        "{0:?} cannot name a consumer: use 3 to 20 lower-case letters or digits, starting with a letter (e.g. loyalty)"
    )]
    BadName(String),
    /// The name is taken.
    #[error("{0:?} is taken: a registered service or a folder already has it")]
    Taken(String),
    /// A file could not be read or written.
    #[error("could not {what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// A file no longer has the line an edit extends.
    #[error("{file} has no line {anchor:?} to register the consumer at; add it by hand there")]
    Anchor {
        /// The file.
        file: &'static str,
        /// The line looked for.
        anchor: String,
    },
    /// A cargo command failed.
    #[error("{0}")]
    Cargo(String),
    /// The drift tests could not rewrite the derived sections.
    #[error(
        "the drift tests could not rewrite kafka-init and the README's configuration table ({0}); run `ORDERFLOW_BLESS=1 cargo test -p e2e --test drift -- kafka_init the_readme_configuration` to see why"
    )]
    Bless(String),
}

/// The consumer's names, as the templates use them.
struct Names {
    /// `loyalty`
    name: String,
    /// `Loyalty`
    camel: String,
    /// `LOYALTY`
    upper: String,
    /// Its default port.
    port: u16,
}

impl Names {
    fn render(&self, template: &str) -> String {
        template
            .replace("{{name}}", &self.name)
            .replace("{{Name}}", &self.camel)
            .replace("{{NAME}}", &self.upper)
            .replace("{{port}}", &self.port.to_string())
    }
}

/// The crate's files: (path under `NAME-service/`, template).
const CRATE: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../templates/consumer/Cargo.toml.tpl"),
    ),
    (
        "migrations/0001_entries.sql",
        include_str!("../../templates/consumer/migrations/0001_entries.sql.tpl"),
    ),
    (
        "src/main.rs",
        include_str!("../../templates/consumer/src/main.rs.tpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/consumer/src/lib.rs.tpl"),
    ),
    (
        "src/reader.rs",
        include_str!("../../templates/consumer/src/reader.rs.tpl"),
    ),
    (
        "src/store.rs",
        include_str!("../../templates/consumer/src/store.rs.tpl"),
    ),
    (
        "src/pages.rs",
        include_str!("../../templates/consumer/src/pages.rs.tpl"),
    ),
    (
        "tests/flow.rs",
        include_str!("../../templates/consumer/tests/flow.rs.tpl"),
    ),
];

/// The consumer's service in docker-compose.yml.
const COMPOSE_SERVICE: &str = include_str!("../../templates/compose-service.yml.tpl");

/// Generates and registers the consumer `name`, then prints what to edit next.
pub fn new_consumer(name: &str) -> Result<ExitCode, NewConsumerError> {
    let root = workspace_root();
    let names = names(name, &root)?;
    eprintln!(
        "xtask: generating {name}-service (port {}, database and role {name}, group {name})",
        names.port
    );
    let dir = root.join(format!("{name}-service"));
    for (path, template) in CRATE {
        write(&dir.join(path), &names.render(template))?;
    }
    register(&root, &names)?;
    cargo(&root, &["fmt", "--all"])?;
    cargo(
        &root,
        &[
            "test", "-p", "e2e", "--test", "drift", "--", BLESSED[0], BLESSED[1],
        ],
    )
    .map_err(|e| match e {
        NewConsumerError::Cargo(status) => NewConsumerError::Bless(status),
        other => other,
    })?;
    println!(
        "{name}-service is generated and registered. Next:\n\
         \n  1. {name}-service/src/reader.rs: declare the fields of OrderPlaced it needs;\n\
         \x20 2. {name}-service/migrations/0001_entries.sql and src/store.rs: its table and its effect;\n\
         \x20 3. {name}-service/src/pages.rs: what its pages show;\n\
         \x20 4. `cargo xtask test` (its own test: {name}-service/tests/flow.rs), then\n\
         \x20    `cargo xtask up` and open http://127.0.0.1:{port}/ after placing an order on\n\
         \x20    http://127.0.0.1:8081/new.\n\
         \nRegistered in: platform/src/services.rs, Cargo.toml, Dockerfile, .dockerignore,\n\
         infra/postgres/init.sql, docker-compose.yml, deploy/orderflow/values.yaml and README.md.",
        port = names.port
    );
    Ok(ExitCode::SUCCESS)
}

/// Checks `name` and picks the first port after the registered ones that
/// docker-compose.yml does not mention.
fn names(name: &str, root: &Path) -> Result<Names, NewConsumerError> {
    let valid = (3..=20).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !valid {
        return Err(NewConsumerError::BadName(name.to_owned()));
    }
    if services::find(name).is_some() || root.join(format!("{name}-service")).exists() {
        return Err(NewConsumerError::Taken(name.to_owned()));
    }
    let compose = read(&root.join("docker-compose.yml"))?;
    let mut port = services::ALL.iter().map(|s| s.port).max().unwrap_or(8080) + 1;
    while compose.contains(&format!(":{port}")) {
        port += 1;
    }
    let mut camel = name.to_owned();
    camel[..1].make_ascii_uppercase();
    Ok(Names {
        name: name.to_owned(),
        camel,
        upper: name.to_ascii_uppercase(),
        port,
    })
}

/// The edits outside the crate, each after the last line of what it extends.
fn register(root: &Path, n: &Names) -> Result<(), NewConsumerError> {
    let (name, upper, port) = (&n.name, &n.upper, n.port);
    edit(root, "platform/src/services.rs", |text| {
        let entry = format!(
            "/// The {name} service (generated by `cargo xtask new-consumer {name}`).\n\
             pub const {upper}_SERVICE: ServiceFacts = ServiceFacts {{\n\
             \x20   name: \"{name}-service\",\n\
             \x20   short: \"{name}\",\n\
             \x20   port: {port},\n\
             \x20   database: \"{name}\",\n\
             \x20   consumer_group: Some(\"{name}\"),\n\
             \x20   label: \"{camel} entries\",\n\
             \x20   collection: \"/entries\",\n\
             \x20   summary: \"Records one entry per order: customer, total, units.\",\n\
             }};\n\n",
            camel = n.camel
        );
        let text = insert_before(text, "/// Every service, in the order of the flow", &entry)?;
        let all = "pub const ALL: &[ServiceFacts] = &[";
        let start = text.find(all).ok_or_else(|| anchor(all))?;
        let end = start + text[start..].find("];").ok_or_else(|| anchor("];"))?;
        let listed = text[start + all.len()..end]
            .trim_end()
            .trim_end_matches(',');
        Ok(format!(
            "{}{listed}, {upper}_SERVICE{}",
            &text[..start + all.len()],
            &text[end..]
        ))
    })?;
    edit(root, "Cargo.toml", |text| {
        let text = after_last(
            text,
            |l| is_quoted_service(l.trim().trim_end_matches(',')),
            &format!("    \"{name}-service\","),
        )?;
        after_last(
            &text,
            |l| l.ends_with("-service\" }") && l.contains("= { path = \""),
            &format!("{name}-service = {{ path = \"{name}-service\" }}"),
        )
    })?;
    edit(root, ".dockerignore", |text| {
        after_last(
            text,
            |l| l.starts_with('!') && l.ends_with("-service"),
            &format!("!{name}-service"),
        )
    })?;
    edit(root, "Dockerfile", |text| {
        let text = replace_line(
            text,
            |l| l.trim_start().starts_with("-p order-service"),
            |l| l.replace(" \\", &format!(" -p {name}-service \\")),
        )?;
        let text = replace_line(
            &text,
            |l| l.trim_start().starts_with("target/release/") && !l.ends_with('\\'),
            |l| format!("{l} target/release/{name}-service"),
        )?;
        after_last(
            &text,
            |l| l.trim_start().starts_with("/app/bin/") && l.ends_with("-service \\"),
            &format!("                    /app/bin/{name}-service \\"),
        )
    })?;
    edit(root, "infra/postgres/init.sql", |text| {
        let text = after_last(
            text,
            |l| l.starts_with("CREATE ROLE "),
            &format!("CREATE ROLE {name} LOGIN PASSWORD '{name}';"),
        )?;
        let text = after_last(
            &text,
            |l| l.starts_with("CREATE DATABASE "),
            &format!("CREATE DATABASE {name} OWNER {name};"),
        )?;
        after_last(
            &text,
            |l| l.starts_with("REVOKE CONNECT"),
            &format!("REVOKE CONNECT, TEMPORARY ON DATABASE {name} FROM PUBLIC;"),
        )
    })?;
    edit(root, "docker-compose.yml", |text| {
        // Its page URL in every service's environment, after the others'.
        let url = |indent: &str| format!("{indent}{upper}_SERVICE_URL: http://127.0.0.1:{port}");
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            out.push((*line).to_owned());
            let is_url = |l: &str| {
                l.trim_start()
                    .split(':')
                    .next()
                    .is_some_and(|k| k.ends_with("_SERVICE_URL"))
            };
            if is_url(line) && !lines.get(i + 1).is_some_and(|next| is_url(next)) {
                let indent = &line[..line.len() - line.trim_start().len()];
                out.push(url(indent));
            }
        }
        let text = out.join("\n") + "\n";
        let urls: String = services::ALL
            .iter()
            .map(|s| (s.short.to_ascii_uppercase(), s.port))
            .chain([(upper.clone(), port)])
            .map(|(short, p)| format!("      {short}_SERVICE_URL: http://127.0.0.1:{p}\n"))
            .collect();
        let block = n.render(COMPOSE_SERVICE).replace("{{service_urls}}", &urls);
        insert_before(
            &text,
            "  # More shipping instances in the same consumer group",
            &format!("{block}\n"),
        )
    })?;
    edit(root, "README.md", |text| {
        // The Docker section's table of published ports.
        after_last(
            text,
            |l| l.starts_with("| `127.0.0.1:") && l.contains("-service"),
            &format!(
                "| `127.0.0.1:{port}` | {name}-service | `cargo xtask up`'s service too; generated by `cargo xtask new-consumer {name}` |"
            ),
        )
    })?;
    edit(root, "deploy/orderflow/values.yaml", |text| {
        let text = after_last(
            text,
            |l| l.starts_with("  ") && l.contains(": http://") && l.ends_with(".example.com"),
            &format!("  {name}: http://{name}.example.com"),
        )?;
        insert_before(
            &text,
            "# Kafka through Strimzi",
            &format!(
                "  # Generated by `cargo xtask new-consumer {name}`.\n  {name}:\n    name: {name}-service\n    port: {port}\n    group: {name}\n    replicas: 1\n    resources:\n      requests: {{cpu: 100m, memory: 32Mi}}\n      limits: {{memory: 96Mi}}\n    autoscaling:\n      enabled: false\n      minReplicas: 1\n      maxReplicas: 6\n      lagThreshold: 2000\n    settings: *consumerSettings\n\n"
            ),
        )
    })?;
    Ok(())
}

/// Whether `line` is a quoted service folder, e.g. `"shipping-service"`.
fn is_quoted_service(line: &str) -> bool {
    line.starts_with('"') && line.ends_with("-service\"") && !line.contains('/')
}

/// The drift tests that rewrite a derived section in bless mode.
const BLESSED: [&str; 2] = [
    "kafka_init_provisions_the_declared_topics_principals_and_acls",
    "the_readme_configuration_table_is_what_the_services_declare",
];

/// Runs `cargo args` at `root`, with the drift tests in bless mode.
fn cargo(root: &Path, args: &[&str]) -> Result<(), NewConsumerError> {
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .env("ORDERFLOW_BLESS", "1")
            .args(args)
            .status()
            .map_err(|e| NewConsumerError::Io {
                what: "run",
                path: PathBuf::from("cargo"),
                source: e,
            })?;
    if status.success() {
        Ok(())
    } else {
        Err(NewConsumerError::Cargo(format!(
            "cargo {}: {status}",
            args.join(" ")
        )))
    }
}

fn anchor(anchor: &str) -> String {
    anchor.to_owned()
}

/// Reads `root/file`, applies `change` and writes it back.
fn edit(
    root: &Path,
    file: &'static str,
    change: impl FnOnce(&str) -> Result<String, String>,
) -> Result<(), NewConsumerError> {
    let path = root.join(file);
    let text = read(&path)?;
    let changed = change(&text).map_err(|anchor| NewConsumerError::Anchor { file, anchor })?;
    write(&path, &changed)
}

/// `text` with `insert` just before the line starting with `anchor`.
fn insert_before(text: &str, anchor: &str, insert: &str) -> Result<String, String> {
    let at = text
        .find(&format!("\n{anchor}"))
        .map(|i| i + 1)
        .ok_or_else(|| anchor.to_owned())?;
    Ok(format!("{}{insert}{}", &text[..at], &text[at..]))
}

/// `text` with `line` after the last line that `is` picks.
fn after_last(text: &str, is: impl Fn(&str) -> bool, line: &str) -> Result<String, String> {
    let mut lines: Vec<&str> = text.lines().collect();
    let last = lines
        .iter()
        .rposition(|l| is(l))
        .ok_or_else(|| format!("like the one {line:?} follows"))?;
    lines.insert(last + 1, line);
    Ok(lines.join("\n") + "\n")
}

/// `text` with the first line that `is` picks replaced by `with(line)`.
fn replace_line(
    text: &str,
    is: impl Fn(&str) -> bool,
    with: impl Fn(&str) -> String,
) -> Result<String, String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let line = lines
        .iter_mut()
        .find(|l| is(l))
        .ok_or_else(|| "naming the services' binaries".to_owned())?;
    *line = with(line);
    Ok(lines.join("\n") + "\n")
}

fn read(path: &Path) -> Result<String, NewConsumerError> {
    std::fs::read_to_string(path).map_err(|e| NewConsumerError::Io {
        what: "read",
        path: path.to_owned(),
        source: e,
    })
}

fn write(path: &Path, text: &str) -> Result<(), NewConsumerError> {
    let io = |what| {
        move |e| NewConsumerError::Io {
            what,
            path: path.to_owned(),
            source: e,
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create the folder of"))?;
    }
    std::fs::write(path, text).map_err(io("write"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_lower_case_letters_and_digits_and_not_taken() {
        let root = workspace_root();
        for bad in [
            "",
            "ab",
            "Loyalty",
            "loyal-ty",
            "1loyalty",
            "loyalty_x",
            "abcdefghijklmnopqrstu",
        ] {
            assert!(
                matches!(names(bad, &root), Err(NewConsumerError::BadName(_))),
                "{bad:?}"
            );
        }
        for taken in ["invoicing", "shipping", "order"] {
            assert!(
                matches!(names(taken, &root), Err(NewConsumerError::Taken(_))),
                "{taken}"
            );
        }
        let fresh = names("loyalty", &root).unwrap();
        assert_eq!(
            (fresh.camel.as_str(), fresh.upper.as_str()),
            ("Loyalty", "LOYALTY")
        );
        assert!(services::ALL.iter().all(|s| s.port < fresh.port));
    }

    #[test]
    fn edits_land_after_the_last_line_they_extend_and_name_a_missing_anchor() {
        let text = "CREATE ROLE a;\nCREATE ROLE b;\n\nCREATE DATABASE a;\n";
        assert_eq!(
            after_last(text, |l| l.starts_with("CREATE ROLE "), "CREATE ROLE c;").unwrap(),
            "CREATE ROLE a;\nCREATE ROLE b;\nCREATE ROLE c;\n\nCREATE DATABASE a;\n"
        );
        assert!(after_last(text, |l| l.starts_with("REVOKE"), "x").is_err());
        assert_eq!(
            insert_before("a\n# K\nb\n", "# K", "new\n").unwrap(),
            "a\nnew\n# K\nb\n"
        );
        assert_eq!(insert_before("a\n", "# K", "x").unwrap_err(), "# K");
    }

    #[test]
    fn every_template_placeholder_is_rendered() {
        let names = Names {
            name: "loyalty".into(),
            camel: "Loyalty".into(),
            upper: "LOYALTY".into(),
            port: 8087,
        };
        for (path, template) in CRATE {
            let rendered = names.render(template);
            assert!(!rendered.contains("{{"), "{path}: {rendered}");
        }
        let compose = names
            .render(COMPOSE_SERVICE)
            .replace("{{service_urls}}", "");
        assert!(!compose.contains("{{"), "{compose}");
    }
}
