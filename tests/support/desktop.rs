//! The desktop notifications the app asks for: a `dbus-monitor` on the session bus the app
//! uses (the tests run under `dbus-run-session`), recording every
//! `org.freedesktop.Notifications.Notify` call — what a notification server would show.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct NotificationMonitor {
    child: Child,
    seen: Arc<Mutex<String>>,
}

impl NotificationMonitor {
    /// Starts watching (before the app could notify).
    pub fn start() -> NotificationMonitor {
        let mut child = Command::new("dbus-monitor")
            .args([
                "--session",
                "type='method_call',interface='org.freedesktop.Notifications',member='Notify'",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-monitor runs (package dbus-bin)");
        let stdout = child.stdout.take().expect("piped");
        let seen = Arc::new(Mutex::new(String::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        // The monitor is attached once it has printed its first signal (NameAcquired).
        let start = Instant::now();
        while seen.lock().unwrap().is_empty() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        NotificationMonitor { child, seen }
    }

    /// How many Notify calls carried `needle` (in the title or the body) so far.
    pub fn count(&self, needle: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .split("method call")
            .filter(|call| call.contains("member=Notify") && call.contains(needle))
            .count()
    }

    /// Waits (up to `limit`) for a Notify call carrying `needle`.
    pub async fn wait_for(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while self.count(needle) == 0 {
            assert!(
                start.elapsed() < limit,
                "no desktop notification with `{needle}`; the session bus saw:\n{}",
                self.seen.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for NotificationMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
