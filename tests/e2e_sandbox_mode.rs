//! `--sandbox`: the app starts the built-in tenant, says so, and can send it a test email.

mod support;

use support::Session;

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
