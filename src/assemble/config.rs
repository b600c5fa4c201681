//! The image config: the base's config JSON kept whole (fields cargo-krust
//! does not know included) and edited in place — Entrypoint, Cmd, Env with
//! PATH gaining `/app`, User, WorkingDir, ExposedPorts, Labels, rootfs
//! diff_ids and history for the layers added, timestamps fixed (SPEC §5).

use serde_json::{Map, Value, json};

use crate::plan::ImageSettings;
use crate::platform::Platform;

/// PATH for images whose base has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the data directory lands in the image, and the variable naming it.
pub const DATA_PATH: &str = "/var/run/krust";
pub const DATA_PATH_ENV: &str = "KRUST_DATA_PATH";

/// A layer added on top of the base, for rootfs and history.
pub struct AddedLayer<'a> {
    pub diff_id: &'a str,
    pub created_by: String,
}

/// Builds the config of one platform's image.
pub fn image_config(
    base: Option<&Value>,
    platform: &Platform,
    bin: &str,
    settings: &ImageSettings,
    added: &[AddedLayer],
    created: &str,
) -> Value {
    let mut config = base.cloned().unwrap_or_else(|| scratch_config(platform));
    let Some(root) = config.as_object_mut() else {
        return config;
    };
    root.insert("created".into(), Value::String(created.to_string()));

    let run = object_entry(root, "config");
    run.insert("Entrypoint".into(), json!([format!("/app/{bin}")]));
    match &settings.args {
        Some(args) => {
            run.insert("Cmd".into(), json!(args));
        }
        None => {
            run.remove("Cmd");
        }
    }
    let env = edit_env(run.get("Env"), settings, settings.data.is_some());
    run.insert("Env".into(), json!(env));
    if let Some(user) = &settings.user {
        run.insert("User".into(), Value::String(user.clone()));
    }
    if let Some(workdir) = &settings.workdir {
        run.insert("WorkingDir".into(), Value::String(workdir.clone()));
    }
    if !settings.ports.is_empty() {
        let ports = object_entry(run, "ExposedPorts");
        for port in &settings.ports {
            ports.insert(normalise_port(port), json!({}));
        }
    }
    if !settings.labels.is_empty() {
        let labels = object_entry(run, "Labels");
        for (key, value) in &settings.labels {
            labels.insert(key.clone(), Value::String(value.clone()));
        }
    }

    let rootfs = object_entry(root, "rootfs");
    rootfs.insert("type".into(), Value::String("layers".into()));
    let diff_ids = array_entry(rootfs, "diff_ids");
    diff_ids.extend(added.iter().map(|l| Value::String(l.diff_id.to_string())));

    let history = array_entry(root, "history");
    history.extend(added.iter().map(|l| {
        json!({
            "created": created,
            "created_by": l.created_by,
            "comment": "cargo-krust",
        })
    }));
    config
}

fn scratch_config(platform: &Platform) -> Value {
    let mut config = json!({
        "architecture": platform.arch,
        "os": platform.os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    });
    if let Some(variant) = &platform.variant {
        config["variant"] = Value::String(variant.clone());
    }
    config
}

/// The base's Env with PATH gaining `/app`, then the configured variables
/// (replacing same-named ones in place, new ones appended in key order).
fn edit_env(base: Option<&Value>, settings: &ImageSettings, has_data: bool) -> Vec<String> {
    let mut env: Vec<String> = base
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    match env.iter_mut().find(|e| e.starts_with("PATH=")) {
        Some(path) => {
            if !path["PATH=".len()..].split(':').any(|p| p == "/app") {
                path.push_str(":/app");
            }
        }
        None => env.insert(0, format!("PATH={DEFAULT_PATH}:/app")),
    }
    let mut wanted: Vec<(String, String)> = settings
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if has_data && !settings.env.contains_key(DATA_PATH_ENV) {
        wanted.push((DATA_PATH_ENV.to_string(), DATA_PATH.to_string()));
    }
    for (key, value) in wanted {
        let line = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|e| e.split('=').next() == Some(key.as_str()))
        {
            Some(existing) => *existing = line,
            None => env.push(line),
        }
    }
    env
}

fn normalise_port(port: &str) -> String {
    let port = port.trim().to_ascii_lowercase();
    if port.contains('/') {
        port
    } else {
        format!("{port}/tcp")
    }
}

fn object_entry<'a>(parent: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = parent
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().expect("just made an object")
}

fn array_entry<'a>(parent: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = parent
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut().expect("just made an array")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn added() -> Vec<AddedLayer<'static>> {
        vec![AddedLayer {
            diff_id: "sha256:new",
            created_by: "cargo-krust".into(),
        }]
    }

    #[test]
    fn keeps_base_fields_and_sets_entrypoint() {
        let base = json!({
            "architecture": "arm64", "os": "linux", "variant": "v8",
            "unknownField": {"keep": true},
            "config": {"Env": ["PATH=/usr/bin", "A=1"], "Cmd": ["/bin/sh"], "User": "65532"},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:base"]},
            "history": [{"created_by": "base"}],
        });
        let settings = ImageSettings {
            env: [("A".to_string(), "2".to_string()), ("B".into(), "3".into())].into(),
            ports: vec!["8080".into()],
            ..Default::default()
        };
        let config = image_config(
            Some(&base),
            &Platform::new("linux", "arm64", None),
            "hello",
            &settings,
            &added(),
            "1970-01-01T00:00:00Z",
        );
        assert_eq!(config["unknownField"], json!({"keep": true}));
        assert_eq!(config["variant"], "v8");
        assert_eq!(config["config"]["Entrypoint"], json!(["/app/hello"]));
        assert!(config["config"].get("Cmd").is_none());
        assert_eq!(config["config"]["User"], "65532");
        assert_eq!(
            config["config"]["Env"],
            json!(["PATH=/usr/bin:/app", "A=2", "B=3"])
        );
        assert_eq!(config["config"]["ExposedPorts"], json!({"8080/tcp": {}}));
        assert_eq!(
            config["rootfs"]["diff_ids"],
            json!(["sha256:base", "sha256:new"])
        );
        assert_eq!(config["history"].as_array().unwrap().len(), 2);
        assert_eq!(config["created"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn scratch_gets_platform_default_path_and_cmd() {
        let settings = ImageSettings {
            args: Some(vec!["--port".into(), "80".into()]),
            data: Some(crate::plan::DataDir {
                path: "/x".into(),
                root: "/".into(),
            }),
            ..Default::default()
        };
        let config = image_config(
            None,
            &Platform::new("linux", "arm", Some("v7")),
            "a",
            &settings,
            &added(),
            "t",
        );
        assert_eq!(config["architecture"], "arm");
        assert_eq!(config["variant"], "v7");
        assert_eq!(config["config"]["Cmd"], json!(["--port", "80"]));
        let env = config["config"]["Env"].as_array().unwrap();
        assert!(env[0].as_str().unwrap().ends_with(":/app"));
        assert!(env.contains(&json!("KRUST_DATA_PATH=/var/run/krust")));
    }
}
