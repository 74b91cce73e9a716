//! What a release build of the app contains: built without the `sandbox` feature, its
//! dependency tree has no sandbox crate (and no `rsa`, which only the sandbox's token signing
//! uses), and the capability it ships grants no sandbox command.

use std::path::Path;
use std::process::Command;

/// The crates of the app's normal (non-dev, non-build) dependency tree, one name per crate.
fn app_dependencies(features: &[&str]) -> Vec<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--locked", "-p", "mailroom-app"])
        .args(["-e", "normal", "--prefix", "none", "--format", "{p}"])
        .arg("--manifest-path")
        .arg(&manifest)
        .args(features)
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

const SANDBOX_CRATES: &[&str] = &[
    "mailroom-sandbox",
    "mailroom-graph-sandbox",
    "mailroom-halo-sandbox",
    "rsa",
];

#[test]
fn a_release_build_has_no_sandbox_crate_and_no_rsa() {
    let release = app_dependencies(&[]);
    assert!(
        release.iter().any(|c| c == "mailroom-engine"),
        "{release:?}"
    );
    let found: Vec<_> = SANDBOX_CRATES
        .iter()
        .filter(|c| release.iter().any(|d| d == *c))
        .collect();
    assert!(found.is_empty(), "a release build depends on {found:?}");

    // The feature is what brings them in (so the check above looks at the right names).
    let sandbox = app_dependencies(&["--features", "sandbox"]);
    for name in SANDBOX_CRATES {
        assert!(
            sandbox.iter().any(|d| d == name),
            "{name} not in {sandbox:?}"
        );
    }
}

#[test]
fn the_shipped_capability_grants_no_sandbox_command() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src-tauri/capabilities");
    let mut shipped = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue; // `sandbox/` is read by sandbox builds only (src-tauri/build.rs)
        }
        shipped += 1;
        let capability: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let permissions = capability["permissions"].as_array().unwrap();
        assert!(!permissions.is_empty(), "{}", path.display());
        for permission in permissions {
            let name = permission.as_str().unwrap_or_default();
            assert!(
                !name.contains("sandbox"),
                "{} grants {name}",
                path.display()
            );
        }
    }
    assert_eq!(shipped, 1, "one capability ships: main-window.json");
    let sandbox = std::fs::read_to_string(dir.join("sandbox/sandbox.json")).unwrap();
    assert!(sandbox.contains("allow-sandbox-send-test-email"));
}
