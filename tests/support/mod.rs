//! End-to-end harness: the real app window, driven through tauri-driver + WebKitWebDriver,
//! under a private Xvfb display when no display is set.
//!
//! Each [`Session`] gets a fresh data directory, its own Xvfb (if needed), its own
//! tauri-driver on free ports and one WebDriver session. Sessions are serialised (one app at a
//! time) because the WebKit processes are heavy on a 2-core machine. On failure, [`Session::run`]
//! saves a screenshot under `tests/artifacts/`.

#![allow(dead_code)]

pub mod desktop;
pub mod wizard;

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

static ONE_APP_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running app under WebDriver.
pub struct Session {
    pub client: Client,
    pub data_dir: tempfile::TempDir,
    /// The X display the app runs on (a second process can be started beside it).
    pub display: String,
    driver: Child,
    xvfb: Option<Child>,
    /// The keyring service the app's secrets go to (kept over a restart).
    keyring_service: String,
    args: Vec<String>,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

fn find_tool(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(extra.iter().cloned())
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

fn wait_for_port(port: u16, deadline: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn start_xvfb() -> (Child, String) {
    let xvfb = find_tool("Xvfb", &[]).expect(
        "Xvfb is not installed: run the README's test command (./dev test), which installs it",
    );
    for display in 90..140 {
        let lock = format!("/tmp/.X{display}-lock");
        if let Ok(pid) = std::fs::read_to_string(&lock) {
            let alive = Path::new(&format!("/proc/{}", pid.trim())).exists();
            if alive || !cfg!(target_os = "linux") {
                continue;
            }
            // A stale lock of a killed Xvfb: reclaim the display.
            let _ = std::fs::remove_file(&lock);
            let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{display}"));
        } else if Path::new(&lock).exists() {
            continue;
        }
        let mut child = Command::new(&xvfb)
            .args([
                format!(":{display}").as_str(),
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let socket = format!("/tmp/.X11-unix/X{display}");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if Path::new(&socket).exists() {
                return (child, format!(":{display}"));
            }
            if let Ok(Some(_)) = child.try_wait() {
                break; // display taken by someone else: try the next one
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("could not start Xvfb on any display from :90 to :139");
}

impl Session {
    /// Starts the app with a fresh data directory, after `prepare` has written into it.
    pub async fn start_with<F, Fut>(prepare: F) -> Session
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: Future<Output = ()>,
    {
        Self::start_with_args(prepare, &[]).await
    }

    /// Starts the app with command-line arguments (e.g. `--sandbox`), after `prepare` has
    /// written into the fresh data directory.
    pub async fn start_with_args<F, Fut>(prepare: F, args: &[&str]) -> Session
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: Future<Output = ()>,
    {
        let serial = ONE_APP_AT_A_TIME.lock().await;
        let data_dir = tempfile::tempdir().expect("temp data dir");
        prepare(data_dir.path().to_path_buf()).await;
        let keyring_service = format!("mailroom-e2e-{}", free_port());
        let args = args.iter().map(|a| a.to_string()).collect();
        Self::launch(serial, data_dir, keyring_service, args).await
    }

    /// Starts the app on `data_dir` under WebDriver.
    async fn launch(
        serial: tokio::sync::MutexGuard<'static, ()>,
        data_dir: tempfile::TempDir,
        keyring_service: String,
        args: Vec<String>,
    ) -> Session {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let driver_bin = find_tool("tauri-driver", &[home.join(".cargo/bin/tauri-driver")]).expect(
            "tauri-driver is not installed: run the README's test command (./dev test), which \
             installs it with `cargo install tauri-driver --locked`",
        );
        let native = find_tool("WebKitWebDriver", &[]).expect(
            "WebKitWebDriver is not installed: run ./dev test, which installs webkit2gtk-driver",
        );

        let (xvfb, display) = match std::env::var("DISPLAY") {
            Ok(d) if !d.is_empty() && std::env::var_os("MAILROOM_E2E_OWN_DISPLAY").is_none() => {
                (None, d)
            }
            _ => {
                let (child, display) = start_xvfb();
                (Some(child), display)
            }
        };

        let port = free_port();
        let native_port = free_port();
        let driver = Command::new(driver_bin)
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native_port.to_string(),
            ])
            .arg("--native-driver")
            .arg(&native)
            .env("DISPLAY", &display)
            .env("MAILROOM_DATA_DIR", data_dir.path())
            .env("MAILROOM_KEYRING_SERVICE", &keyring_service)
            // Sign-in URLs are shown, never opened in a browser.
            .env("MAILROOM_NO_BROWSER", "1")
            .env("RUST_LOG", "info,mailroom_engine=debug,mailroom_app=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tauri-driver");
        let mut session_parts = (driver, xvfb);
        // Both ports must accept connections, or the session fails with IncompleteMessage.
        if !wait_for_port(port, Duration::from_secs(20)) {
            panic!("tauri-driver did not listen on port {port}");
        }

        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "wry".into());
        caps.insert(
            "tauri:options".into(),
            serde_json::json!({ "application": env!("CARGO_BIN_EXE_mailroom-app"), "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut last_error = None;
        let mut client = None;
        for _ in 0..3 {
            match ClientBuilder::new(connector.clone())
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(e) => {
                    last_error = Some(e);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        let client = client.unwrap_or_else(|| {
            let _ = session_parts.0.kill();
            panic!("no WebDriver session: {last_error:?}")
        });
        let session = Session {
            client,
            data_dir,
            display,
            driver: session_parts.0,
            xvfb: session_parts.1.take(),
            keyring_service,
            args,
            _serial: serial,
        };
        // Every screenshot shows the window at the size the issue reviews it at.
        let _ = session.client.set_window_rect(0, 0, 1280, 800).await;
        session.wait_ready().await;
        session
    }

    /// Starts the app on an empty data directory.
    pub async fn start() -> Session {
        Self::start_with(|_| async {}).await
    }

    /// Reloads the page and waits until the UI has finished loading again (its handlers are
    /// attached only then: a click before that does nothing).
    pub async fn reload(&self) {
        self.client.refresh().await.unwrap();
        self.wait_ready().await;
    }

    /// Goes back to the page before (the app, after a test visited the sandbox's pages in the
    /// same window) and waits until the UI has loaded again.
    pub async fn back(&self) {
        self.client.enter_parent_frame().await.ok();
        self.client.back().await.unwrap();
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            let ready = self
                .client
                .execute(
                    "return document.body && document.body.dataset.ready === 'true';",
                    vec![],
                )
                .await
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if ready {
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!("the UI did not finish loading within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for an element (up to 10 s) and returns it.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("element `{css}` did not appear: {e}"))
    }

    /// The visible text of an element.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("element text")
    }

    /// Waits (up to 10 s) until the element's text contains `needle`, and returns the text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        self.wait_text_for(css, needle, Duration::from_secs(10))
            .await
    }

    /// [`Session::wait_text`] with its own time limit (work that calls out to the sandbox
    /// several times, on a loaded machine).
    pub async fn wait_text_for(&self, css: &str, needle: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(el) => el.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return text;
            }
            if start.elapsed() > limit {
                let page = self.page_summary().await;
                panic!("`{css}` never showed `{needle}`; last text: `{text}`; {page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the page shows, for a failure's message: whether the UI finished loading, the
    /// route, the view's first lines and the toasts.
    async fn page_summary(&self) -> String {
        self.client
            .execute(
                "const view = document.getElementById('view');
                 const toasts = [...document.querySelectorAll('.toast')].map(t => t.textContent);
                 return `ready: ${document.body && document.body.dataset.ready}, route: ${location.hash}, `
                   + `view: ${view ? view.innerText.slice(0, 400) : '(none)'}, toasts: ${JSON.stringify(toasts)}`;",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "the page could not be read".into())
    }

    /// Runs a test body; on panic saves a screenshot as `tests/artifacts/<name>.png` and
    /// re-raises. Always ends the session cleanly.
    pub async fn run<F>(self, name: &str, body: F)
    where
        F: AsyncFnOnce(&Session),
    {
        use futures_util::FutureExt;
        let outcome = std::panic::AssertUnwindSafe(body(&self))
            .catch_unwind()
            .await;
        if outcome.is_err() || std::env::var_os("MAILROOM_E2E_SCREENSHOTS").is_some() {
            self.screenshot(name).await;
        }
        self.stop().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    /// [`Session::run`], then the app quits and starts again on the same data directory and
    /// keyring, as an admin restarts it; returns the new session.
    pub async fn run_and_restart<F>(self, name: &str, body: F) -> Session
    where
        F: AsyncFnOnce(&Session),
    {
        use futures_util::FutureExt;
        let outcome = std::panic::AssertUnwindSafe(body(&self))
            .catch_unwind()
            .await;
        if outcome.is_err() || std::env::var_os("MAILROOM_E2E_SCREENSHOTS").is_some() {
            self.screenshot(name).await;
        }
        let Session {
            client,
            data_dir,
            driver,
            xvfb,
            keyring_service,
            args,
            _serial,
            ..
        } = self;
        stop_parts(client, driver, xvfb).await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
        Self::launch(_serial, data_dir, keyring_service, args).await
    }

    /// Sandbox mode: the URL of the sandbox's control API, as the sidebar lists it.
    pub async fn control_url(&self) -> String {
        // The banner is filled once the app has asked for the sandbox's facts (after a reload
        // too): wait for it.
        let start = Instant::now();
        loop {
            let urls = self
                .client
                .execute(
                    "return [...document.querySelectorAll('#sandbox-endpoints dd')].map(d => d.textContent);",
                    vec![],
                )
                .await
                .unwrap();
            if let Some(url) = urls
                .as_array()
                .and_then(|a| a.get(4))
                .and_then(|v| v.as_str())
            {
                return url.to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the control API URL is listed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a screenshot of the window under `tests/artifacts/`.
    /// Answers the native file dialog titled `title` (opened by the backend) with `path`, as a
    /// user would with the keyboard, through xdotool on the session's display: GTK's open
    /// dialog takes a typed location after Ctrl+L; its save dialog's name field takes a whole
    /// path. Then Enter.
    pub async fn answer_native_dialog(&self, title: &str, path: &Path, save: bool) {
        let display = self.display.clone();
        let title = title.to_string();
        let typed = path.display().to_string();
        tokio::task::spawn_blocking(move || {
            let xdotool = |args: &[&str]| {
                Command::new("xdotool")
                    .args(args)
                    .env("DISPLAY", &display)
                    .output()
                    .expect("xdotool runs (./dev test installs it)")
            };
            let mut dialog = None;
            for _ in 0..100 {
                let found = xdotool(&["search", "--onlyvisible", "--name", &title]);
                if let Some(id) = String::from_utf8_lossy(&found.stdout).lines().next() {
                    dialog = Some(id.to_string());
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let dialog = dialog
                .unwrap_or_else(|| panic!("the native dialog \"{title}\" opened within 20 s"));
            // No window manager under Xvfb: give the dialog the keyboard focus directly.
            std::thread::sleep(Duration::from_millis(500));
            xdotool(&["windowfocus", "--sync", &dialog]);
            if save {
                xdotool(&["key", "ctrl+a"]);
            } else {
                xdotool(&["key", "ctrl+l"]);
            }
            std::thread::sleep(Duration::from_millis(300));
            xdotool(&["type", "--delay", "15", &typed]);
            std::thread::sleep(Duration::from_millis(300));
            xdotool(&["key", "Return"]);
        })
        .await
        .unwrap();
    }

    pub async fn screenshot(&self, name: &str) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
        let _ = std::fs::create_dir_all(&dir);
        match self.client.screenshot().await {
            Ok(png) => {
                let path = dir.join(format!("{name}.png"));
                let _ = std::fs::write(&path, png);
                eprintln!("screenshot saved: {}", path.display());
            }
            Err(e) => eprintln!("could not take a screenshot: {e}"),
        }
    }

    async fn stop(self) {
        stop_parts(self.client, self.driver, self.xvfb).await;
    }
}

/// Ends a session: WebDriver, the app with it, its display.
async fn stop_parts(client: Client, mut driver: Child, xvfb: Option<Child>) {
    let _ = client.close().await;
    // SIGTERM, not SIGKILL: a killed tauri-driver orphans WebKitWebDriver, which keeps the
    // test's output pipe open and hangs the run.
    let _ = Command::new("kill")
        .args(["-TERM", &driver.id().to_string()])
        .status();
    let _ = driver.wait();
    if let Some(mut xvfb) = xvfb {
        // SIGTERM lets Xvfb remove its /tmp/.X<n>-lock and socket (SIGKILL leaves them, and
        // after 50 runs every display from :90 looks taken).
        let _ = Command::new("kill")
            .args(["-TERM", &xvfb.id().to_string()])
            .status();
        let _ = xvfb.wait();
    }
}
