//! CycloneDX 1.6 JSON. `metadata.component` is the image (a container named
//! by its platform manifest's purl); the components are the crates, the
//! base image and rustc. Runtime crates have scope `required`, build-time
//! ones (build dependencies, proc macros and what only they use) and rustc
//! scope `excluded`, each with a `cargo-krust:role` property saying which;
//! `dependencies` holds every edge of the build.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{Component, Model, TOOL, content_hash, json_bytes, purl};
use crate::plan::graph::Role;

const IMAGE: &str = "image";
const BASE: &str = "base-image";
const TOOLCHAIN: &str = "toolchain-rustc";

/// The document's bytes.
pub(super) fn document(model: &Model) -> Vec<u8> {
    let input = model.input;
    let image = input.image;
    let mut components: Vec<Value> = model
        .components
        .iter()
        .map(|c| crate_component(model, c))
        .collect();
    let mut image_uses = vec![model.root().id.clone()];
    if let Some(base) = &input.base {
        components.push(json!({
            "type": "container",
            "bom-ref": BASE,
            "name": format!("{}/{}", base.image.registry, base.image.repository),
            "version": base.image.digest,
            "purl": purl::oci(&base.image),
            "scope": "required",
            "description": format!(
                "the base image {} (index {}), its {} manifest",
                base.configured, base.index_digest, base.image.platform
            ),
        }));
        image_uses.push(BASE.to_string());
    }
    components.push(json!({
        "type": "application",
        "bom-ref": TOOLCHAIN,
        "name": "rustc",
        "version": input.toolchain.release,
        "scope": "excluded",
        "description": model.toolchain_note(),
        "properties": [role_property("toolchain")],
    }));

    // What each component uses, listed sorted and once.
    let mut dependencies: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    dependencies.insert(IMAGE.into(), image_uses.into_iter().collect());
    if input.base.is_some() {
        dependencies.insert(BASE.into(), BTreeSet::new());
    }
    dependencies.insert(TOOLCHAIN.into(), BTreeSet::new());
    for component in &model.components {
        dependencies.insert(component.id.clone(), BTreeSet::new());
    }
    for &(from, to, _) in &model.edges {
        if let (Some(from), Some(to)) = (model.components.get(from), model.components.get(to))
            && let Some(uses) = dependencies.get_mut(&from.id)
        {
            uses.insert(to.id.clone());
        }
    }
    let dependencies: Vec<Value> = dependencies
        .into_iter()
        .map(|(id, uses)| json!({"ref": id, "dependsOn": uses}))
        .collect();

    let mut document = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {
            "timestamp": input.created,
            "lifecycles": [{"phase": "build"}],
            "tools": {"components": [{
                "type": "application",
                "name": "cargo-krust",
                "version": env!("CARGO_PKG_VERSION"),
                "description": TOOL,
            }]},
            "component": {
                "type": "container",
                "bom-ref": IMAGE,
                "name": format!("{}/{}", image.registry, image.repository),
                "version": image.digest,
                "purl": purl::oci(&image),
                "properties": [{"name": "cargo-krust:platform", "value": image.platform.to_string()}],
            },
        },
        "components": components,
        "dependencies": dependencies,
    });
    document["serialNumber"] = json!(serial_number(&content_hash(&json_bytes(&document))));
    json_bytes(&document)
}

fn role_property(role: &str) -> Value {
    json!({"name": "cargo-krust:role", "value": role})
}

fn crate_component(model: &Model, component: &Component) -> Value {
    let package = component.package;
    let (scope, role) = match component.role {
        Role::Runtime => ("required", "runtime"),
        Role::Build => ("excluded", "build"),
    };
    let mut value = json!({
        "type": if model.is_root(component) { "application" } else { "library" },
        "bom-ref": component.id,
        "name": package.name,
        "version": package.version,
        "scope": scope,
        "description": model.role_note(component),
        "properties": [role_property(role)],
    });
    if let Some(purl) = &component.purl {
        value["purl"] = json!(purl);
    }
    if let Some(checksum) = &component.checksum {
        value["hashes"] = json!([{"alg": "SHA-256", "content": checksum}]);
    }
    if let Some(license) = &component.license {
        value["licenses"] = json!([{"expression": license}]);
    }
    value
}

/// A `urn:uuid:` made from a content hash (shaped as a version 5 UUID, as
/// the schema's pattern asks), never random.
fn serial_number(hash: &str) -> String {
    let hex: Vec<char> = hash
        .chars()
        .chain(std::iter::repeat('0'))
        .take(32)
        .collect();
    let mut hex: String = hex.into_iter().collect();
    // Version 5 and the RFC 4122 variant.
    hex.replace_range(12..13, "5");
    let variant = u8::from_str_radix(&hex[16..17], 16).unwrap_or(0) & 0x3 | 0x8;
    hex.replace_range(16..17, &format!("{variant:x}"));
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::serial_number;
    use crate::plan::SbomFormat;
    use crate::supply::sbom::tests::{named, parsed};

    fn cyclonedx() -> Value {
        parsed(SbomFormat::Cyclonedx)
    }

    fn component<'a>(document: &'a Value, name: &str) -> &'a Value {
        named(document, "components", name)
    }

    #[test]
    fn components_carry_purl_license_scope_and_dependencies() {
        let document = cyclonedx();
        assert_eq!(document["specVersion"], "1.6");
        assert_eq!(document["metadata"]["timestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(
            document["metadata"]["component"]["purl"],
            "pkg:oci/app@sha256%3A1111111111111111111111111111111111111111111111111111111111111111?arch=arm64&repository_url=127.0.0.1:5000/team/app"
        );
        let pure = component(&document, "pure");
        assert_eq!(pure["purl"], "pkg:cargo/pure@1.0.0");
        assert_eq!(pure["scope"], "required");
        assert_eq!(pure["licenses"][0]["expression"], "MIT");
        let mac = component(&document, "mac");
        assert_eq!(mac["scope"], "excluded");
        assert_eq!(mac["properties"][0]["value"], "build");
        let app = component(&document, "app");
        assert_eq!(app["type"], "application");
        assert!(app["purl"].is_null());
        let depends_on = |id: &Value| -> Vec<Value> {
            document["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| &d["ref"] == id)
                .unwrap()["dependsOn"]
                .as_array()
                .unwrap()
                .clone()
        };
        let app_uses = depends_on(&app["bom-ref"]);
        for name in ["pure", "sys", "mac", "host-sys"] {
            assert!(app_uses.contains(&component(&document, name)["bom-ref"]));
        }
        let image_uses = depends_on(&Value::from("image"));
        assert!(image_uses.contains(&app["bom-ref"]));
        assert!(image_uses.contains(&Value::from("base-image")));
    }

    #[test]
    fn serial_numbers_are_uuid_shaped() {
        let serial = serial_number(&"f".repeat(64));
        assert_eq!(serial, "urn:uuid:ffffffff-ffff-5fff-bfff-ffffffffffff");
        let document = cyclonedx();
        let serial = document["serialNumber"].as_str().unwrap();
        assert_eq!(serial.len(), "urn:uuid:".len() + 36);
    }
}
