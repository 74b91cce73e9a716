//! The service's Debian package (`./dev package` runs `packaging/deb/service.sh` on the release
//! binary; this packs the test build the same way): the binary, the systemd unit, the
//! environment file as a conffile, the maintainer scripts, and Depends read from the binary's
//! libraries. Installing it is checked by hand (README, "Running as a service"): it needs root.

use std::path::Path;
use std::process::Command;

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .expect("dpkg-deb");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_service_package_holds_the_binary_its_unit_and_its_scripts() {
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        panic!("dpkg-deb is missing: this test needs a Debian system (./dev setup)");
    }
    let out = tempfile::tempdir().unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/deb/service.sh"
    );
    let built = Command::new(script)
        .arg(env!("CARGO_BIN_EXE_mailroom"))
        .arg(out.path())
        .env("MAILROOM_DEB_COMPRESSION", "gzip")
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let deb = Path::new(String::from_utf8_lossy(&built.stdout).trim()).to_path_buf();
    assert!(deb.starts_with(out.path()), "{deb:?}");

    let info = dpkg_deb(&["--info"], &deb);
    assert!(info.contains("Package: mailroom-service"), "{info}");
    assert!(
        info.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );
    let depends = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .unwrap_or_else(|| panic!("{info}"));
    for needed in ["libc6", "libdbus-1-3", "passwd"] {
        assert!(depends.split(", ").any(|d| d == needed), "{depends}");
    }
    // The maintainer scripts and the conffile list, as dpkg reads them.
    let control = |member: &str| {
        let out = Command::new("dpkg-deb")
            .arg("--info")
            .arg(&deb)
            .arg(member)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{member}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(control("conffiles").trim(), "/etc/mailroom/mailroom.env");
    let postinst = control("postinst");
    assert!(
        postinst.contains("useradd --system") && postinst.contains("secrets new-key"),
        "{postinst}"
    );
    assert!(control("prerm").contains("systemctl disable --now mailroom"));
    assert!(control("postrm").contains("never deleted"));

    let contents = dpkg_deb(&["--contents"], &deb);
    let entry = |path: &str| {
        contents
            .lines()
            .find(|l| l.ends_with(path))
            .unwrap_or_else(|| panic!("{path} missing: {contents}"))
            .to_string()
    };
    assert!(entry("./usr/bin/mailroom").starts_with("-rwxr-xr-x root/root"));
    assert!(entry("./lib/systemd/system/mailroom.service").starts_with("-rw-r--r-- root/root"));
    assert!(entry("./etc/mailroom/mailroom.env").starts_with("-rw-r----- root/root"));
    assert!(
        contents
            .lines()
            .next()
            .unwrap()
            .starts_with("drwxr-xr-x root/root"),
        "{contents}"
    );

    // The packed binary is this program.
    let unpacked = tempfile::tempdir().unwrap();
    let x = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(unpacked.path())
        .status()
        .unwrap();
    assert!(x.success());
    let version = Command::new(unpacked.path().join("usr/bin/mailroom"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
    let unit = std::fs::read_to_string(unpacked.path().join("lib/systemd/system/mailroom.service"))
        .unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/mailroom serve"), "{unit}");
}
