//! A real browser for the page tests: Debian's `chromium`, headless, driven
//! over WebDriver by `chromedriver` (package `chromium-driver`) with
//! `fantoccini`.
//!
//! [`Browser::start`] runs a `chromedriver` of its own on a free port with a
//! fresh profile directory, and ends both when dropped. Chromium runs with
//! the flags a closed network needs (no background networking, no component
//! updates, no sync, no QUIC): without them it keeps trying to reach Google
//! and its connections are refused. A missing browser or driver fails with
//! one line naming the packages to install.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context as _;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::services::wait_until;

/// The window every page is seen (and photographed) in.
pub const WINDOW: (u32, u32) = (1280, 1000);

/// A headless Chromium session; the driver and the profile go with it.
pub struct Browser {
    client: Client,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium session in a window of [`WINDOW`].
    pub async fn start() -> anyhow::Result<Self> {
        let chromium = devinfra::prereq::chromium().map_err(|m| anyhow::anyhow!("{m}"))?;
        let chromedriver = devinfra::prereq::chromedriver().map_err(|m| anyhow::anyhow!("{m}"))?;
        let port = devinfra::process::free_port()?;
        let profile = std::env::temp_dir().join(format!("e2e-chromium-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&profile).context("creating the browser's profile directory")?;
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, which the browsers it starts join:
            // ending the group ends them too, also when a test fails.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", chromedriver.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let status = reqwest::Client::new();
        wait_until("chromedriver to answer", || async {
            Ok(status
                .get(format!("{url}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()))
        })
        .await?;
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&url)
            .await
            .context("opening a Chromium session through chromedriver")?;
        client.set_window_size(WINDOW.0, WINDOW.1).await?;
        Ok(Browser {
            client,
            driver,
            profile,
        })
    }

    /// The WebDriver client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits for it to load.
    pub async fn open(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))
    }

    /// The current address.
    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(self.client.current_url().await?.to_string())
    }

    /// The element `css` selects (the first).
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        let url = self.url().await?;
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("finding {css} on {url}"))
    }

    /// How many elements `css` selects.
    pub async fn count(&self, css: &str) -> anyhow::Result<usize> {
        Ok(self.client.find_all(Locator::Css(css)).await?.len())
    }

    /// Types `value` into the input named `name`, replacing what it held.
    pub async fn fill(&self, name: &str, value: &str) -> anyhow::Result<()> {
        let input = self.find(&format!("[name=\"{name}\"]")).await?;
        input.clear().await?;
        input
            .send_keys(value)
            .await
            .with_context(|| format!("typing into {name}"))
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.find(css)
            .await?
            .click()
            .await
            .with_context(|| format!("clicking {css}"))
    }

    /// The text content (not the rendered text: hidden parts included) of `css`.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let value = self
            .script(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                vec![json!(css)],
            )
            .await?;
        let url = self.url().await?;
        value
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no {css} on {url}"))
    }

    /// Runs `script` in the page and returns what it returns.
    pub async fn script(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.client
            .execute(script, args)
            .await
            .context("running a script in the page")
    }

    /// Waits until `css` selects something on the current page (which
    /// `live.js` may be updating).
    pub async fn wait_for(&self, what: &str, css: &str) -> anyhow::Result<()> {
        wait_until(what, || async { Ok(self.count(css).await? > 0) }).await
    }

    /// Saves a PNG of the window as `<dir>/<name>.png` ([`screenshot_dir`]).
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Ends the session, the browser and the driver.
    pub async fn close(mut self) -> anyhow::Result<()> {
        let closed = self.client.clone().close().await;
        self.end_processes();
        let _ = self.driver.wait().await;
        remove_profile(&self.profile);
        closed.context("closing the browser session")
    }

    /// Kills the driver's process group: the driver and every browser process
    /// it started (a killed chromedriver leaves its Chromium running).
    fn end_processes(&mut self) {
        if let Some(pid) = self.driver.id().and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill(2) with a negative pid signals the process group
            // the driver leads (it was spawned with process_group(0)); no
            // memory is involved.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.driver.start_kill();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.end_processes();
        remove_profile(&self.profile);
    }
}

/// Removes the profile; what a still-exiting Chromium keeps open stays in
/// the temporary directory.
fn remove_profile(profile: &Path) {
    let _ = std::fs::remove_dir_all(profile);
}

/// Where screenshots go: `SCREENSHOTS_DIR` if set, relative to the
/// workspace (`docs/screenshots` refreshes the committed set), else
/// `target/screenshots`, so that a test run leaves the work tree as it was.
pub fn screenshot_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match std::env::var_os("SCREENSHOTS_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target/screenshots"),
    }
}
