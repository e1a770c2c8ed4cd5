//! The deployment files, checked without a Docker engine or a cluster: they parse,
//! name what they should, and every command they run is one the binary accepts.

use std::path::Path;

use clap::Parser;
use ecp_inventory::cli::Cli;
use serde_yaml::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

/// The binary would accept these arguments.
fn assert_accepted(args: &[String]) {
    let argv = std::iter::once("ecp-inventory".to_owned()).chain(args.iter().cloned());
    if let Err(e) = Cli::try_parse_from(argv) {
        panic!("ecp-inventory {args:?} is refused: {e}");
    }
}

#[test]
fn compose_has_the_stack_and_runs_real_subcommands() {
    let compose: Value = serde_yaml::from_str(&read("docker-compose.yml")).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    for name in [
        "postgres",
        "simulator",
        "migrate",
        "sync",
        "metabase",
        "analyst-role",
    ] {
        assert!(services.contains_key(name), "service {name} missing");
    }
    let ours: Vec<&str> = ["simulator", "migrate", "sync"].into();
    for name in &ours {
        let service = &compose["services"][*name];
        assert_eq!(
            service["build"].as_str(),
            Some("."),
            "{name} builds the image"
        );
        assert_accepted(&strings(&service["command"]));
    }
    for name in ["migrate", "sync"] {
        assert_eq!(
            compose["services"][name]["restart"].as_str(),
            Some("no"),
            "{name} is one-shot"
        );
    }
    assert_eq!(
        compose["services"]["sync"]["depends_on"]["migrate"]["condition"].as_str(),
        Some("service_completed_successfully")
    );
    assert_eq!(
        strings(&compose["services"]["sync"]["command"])[..3],
        ["sync", "--endpoint", "http://simulator:8790"]
    );
    for name in ["metabase", "analyst-role"] {
        assert_eq!(
            strings(&compose["services"][name]["profiles"]),
            ["bi"],
            "{name}"
        );
    }
    // The BI login is made from the read-only role script the image also ships.
    // As the container gets it: compose turns `$$` into `$`, and no shell reads
    // what is left (a shell would take the DO block's `$$` for its process id).
    let args: Vec<String> = strings(&compose["services"]["analyst-role"]["command"])
        .iter()
        .map(|a| a.replace("$$", "$"))
        .collect();
    assert_eq!(args[0], "psql", "{args:?}");
    let role = args.join(" ");
    assert!(role.contains("/deploy/readonly_role.sql") && role.contains("IN ROLE ecp_readonly"));
    let block = args
        .iter()
        .find(|a| a.starts_with("DO "))
        .expect("the DO block");
    assert!(
        block.starts_with("DO $$ BEGIN") && block.ends_with("END $$"),
        "{block}"
    );
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/readonly_role.sql")
        .exists());
}

#[test]
fn the_cronjobs_never_overlap_use_rrsa_and_secrets_and_run_as_non_root() {
    let text = read("deploy/cronjob.yaml");
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["CronJob", "CronJob", "ServiceAccount", "ConfigMap"],
        "no Secret: applying the file again must not overwrite the one kubectl made"
    );

    for cron in docs.iter().filter(|d| d["kind"] == "CronJob") {
        let name = cron["metadata"]["name"].as_str().unwrap();
        assert_eq!(
            cron["spec"]["concurrencyPolicy"].as_str(),
            Some("Forbid"),
            "{name}"
        );
        let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"].as_bool(),
            Some(true),
            "{name}"
        );
        assert_ne!(
            pod["securityContext"]["runAsUser"].as_u64(),
            Some(0),
            "{name}"
        );
        let container = &pod["containers"][0];
        assert_accepted(&strings(&container["args"]));
        let env = container["env"].as_sequence().unwrap();
        let database = env.iter().find(|e| e["name"] == "DATABASE_URL").unwrap();
        assert!(
            database["valueFrom"]["secretKeyRef"]["key"]
                .as_str()
                .is_some(),
            "{name}: DATABASE_URL comes from a Secret"
        );
    }

    let sync = &docs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(sync["serviceAccountName"].as_str(), Some("ecp-inventory"));
    let names: Vec<&str> = sync["containers"][0]["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for var in [
        "ALIBABA_CLOUD_ROLE_ARN",
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
        "ECP_PUSHGATEWAY_URL",
    ] {
        assert!(names.contains(&var), "{var} missing");
    }
    // The token file the variable names is there: a projected service-account
    // token for STS, mounted where the variable says.
    let container = &sync["containers"][0];
    let token_file = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "ALIBABA_CLOUD_OIDC_TOKEN_FILE")
        .and_then(|e| e["value"].as_str())
        .unwrap();
    let (dir, file) = token_file.rsplit_once('/').unwrap();
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == dir)
        .expect("the token's directory is mounted");
    let volume = sync["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let token = &volume["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(token["path"].as_str(), Some(file));
    assert_eq!(token["audience"].as_str(), Some("sts.aliyuncs.com"));
    // The commented-out key pair fallback also reads from the Secret.
    assert!(text.contains("# - name: ALIBABA_CLOUD_ACCESS_KEY_SECRET"));
    assert!(text.contains("secretKeyRef: { name: ecp-inventory, key: access-key-secret }"));
    // The commented-out --config variant is accepted too, and its file parses.
    let line = text
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("# args: [\"sync\", \"--config\"")
        })
        .unwrap();
    let args: Vec<String> =
        serde_yaml::from_str(line.trim_start().trim_start_matches("# args: ")).unwrap();
    assert_accepted(&args);
    let toml = docs[3]["data"]["sources.toml"].as_str().unwrap();
    ecp_inventory::config::ConfigFile::parse(toml).unwrap();
}

#[test]
fn the_image_is_multi_stage_non_root_and_has_what_the_build_needs() {
    let dockerfile = read("Dockerfile");
    assert_eq!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")),
        2
    );
    for copied in [
        "COPY Cargo.toml Cargo.lock build.rs",
        "COPY src",
        "COPY migrations",
        "COPY sql",
    ] {
        assert!(dockerfile.contains(copied), "{copied} missing");
    }
    let user = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("a USER line");
    assert!(!["root", "0"].contains(&user.trim()), "runs as {user}");
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/ecp-inventory\"]"));
}
