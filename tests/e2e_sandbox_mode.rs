//! `--sandbox`: the app starts the built-in tenant, says so, and can send it a test email.

mod support;

use support::Session;

/// Starts a second `mailroom-app --sandbox` on the running session's data directory and waits
/// (at most 60 s) for it to exit.
async fn second_launch(s: &Session) -> std::process::Output {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mailroom-app"))
        .arg("--sandbox")
        .env("DISPLAY", &s.display)
        .env("MAILROOM_DATA_DIR", s.data_dir.path())
        .env("MAILROOM_NO_BROWSER", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("a second app starts");
    let pid = child.id();
    let waited = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await;
    match waited {
        Ok(output) => output.unwrap().unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the second launch did not exit within 60 s");
        }
    }
}

#[tokio::test]
async fn sandbox_mode_shows_the_tenant_and_sends_a_test_email() {
    Session::start_with_args(|_| async {}, &["--sandbox"])
        .await
        .run("sandbox_mode", async |s| {
            s.wait_text("#sandbox-banner", "Nothing leaves this computer")
                .await;
            let endpoints = s
                .client
                .execute(
                    "return document.getElementById('sandbox-endpoints').textContent;",
                    vec![],
                )
                .await
                .unwrap();
            let endpoints = endpoints.as_str().unwrap_or_default().to_string();
            assert!(endpoints.contains("Contoso (sandbox)"), "{endpoints}");
            assert!(endpoints.contains("http://127.0.0.1:"), "{endpoints}");
            s.find("#sandbox-send-test").await.click().await.unwrap();
            s.wait_text("#toast", "to support@contoso.test").await;

            // A second launch on the same data directory stops before it touches anything: it
            // used to reset the sandbox directory (database and keyring entries) under the
            // running app.
            let second = second_launch(s).await;
            assert!(!second.status.success(), "{second:?}");
            let stderr = String::from_utf8_lossy(&second.stderr);
            assert!(stderr.contains("already running"), "{stderr}");
            assert!(
                stderr.contains("Mailroom (sandbox) (process"),
                "the refusal names the running app: {stderr}"
            );
            assert!(s
                .data_dir
                .path()
                .join("sandbox")
                .join("mailroom.db")
                .exists());
            // The first app still works on its data: another test email goes through.
            s.find("#sandbox-send-test").await.click().await.unwrap();
            s.wait_text("#toast", "to support@contoso.test").await;
            assert!(s.text("#mailbox-list").await.contains("Support"));
        })
        .await;
}

#[tokio::test]
async fn normal_mode_has_no_sandbox_banner() {
    Session::start()
        .await
        .run("no_sandbox", async |s| {
            let hidden = s
                .find("#sandbox-banner")
                .await
                .attr("hidden")
                .await
                .unwrap();
            assert!(hidden.is_some(), "the banner only shows in sandbox mode");
        })
        .await;
}
