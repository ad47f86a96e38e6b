//! Xenbus, the frontend side: find a device's backend, walk the connection states, and wait
//! for the backend's state changes through a xenstore watch.
//!
//! The toolstack creates, for device `<class>/<index>` of our domain:
//! - ours: `device/<class>/<index>/{backend, backend-id, state}`;
//! - the backend's: `<backend>/{frontend, frontend-id, state, ...features}`.
//!
//! The handshake: the backend reaches `InitWait` and publishes its features; we publish our
//! ring references and event channel, and then backends differ ([`Handshake`]): Linux's blkback
//! connects when we switch to `Initialised` and then switches to `Connected`, after which so do
//! we; Linux's netback ignores `Initialised` and connects only when we switch to `Connected`.
//! Closing goes `Closing` → `Closed` on both sides.

use crate::abi::XenbusState;
use crate::events::DomId;
use crate::xenstore::{Transaction, Transport, Xenstore, XenstoreError};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;

/// A setup step's future behind a `dyn` pointer: its poll is compiled once instead of being
/// inlined into the state machine of every handshake that awaits it (the handshakes run once
/// per device, so an allocation and an indirect call cost nothing that matters; the bytes do).
type OutOfLine<'a, O> = Pin<Box<dyn Future<Output = O> + 'a>>;

/// Xenbus errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XenbusError {
    /// A xenstore request failed.
    Xenstore(XenstoreError),
    /// A node the protocol needs is missing.
    Missing(String),
    /// A node holds a value of the wrong form (named, with the value).
    BadValue(String, String),
    /// The backend went away or closed (while we were connecting, or later: the device is
    /// being detached).
    BackendClosed(XenbusState),
}

impl From<XenstoreError> for XenbusError {
    fn from(e: XenstoreError) -> Self {
        XenbusError::Xenstore(e)
    }
}

impl core::fmt::Display for XenbusError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            XenbusError::Xenstore(e) => write!(f, "xenbus: {e}"),
            XenbusError::Missing(p) => write!(f, "xenbus: {p} is missing"),
            XenbusError::BadValue(p, v) => write!(f, "xenbus: {p} holds a bad value {v:?}"),
            XenbusError::BackendClosed(s) => {
                write!(f, "xenbus: the backend went to state {s:?}")
            }
        }
    }
}

impl core::error::Error for XenbusError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            XenbusError::Xenstore(e) => Some(e),
            _ => None,
        }
    }
}

/// The device indices of class `class` (`vif`, `vbd`, ...) that the toolstack gave us.
pub async fn devices<T: Transport>(xs: &Xenstore<T>, class: &str) -> Result<Vec<u32>, XenbusError> {
    let names = match xs.directory(&format!("device/{class}")).await {
        Ok(n) => n,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut ids: Vec<u32> = names.iter().filter_map(|n| n.parse().ok()).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// What a feature flag (`feature-*`) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// The key is absent: off.
    Absent,
    /// `"0"`: off.
    Off,
    /// `"1"`: on.
    On,
    /// Anything else: off (and a fault of whoever wrote it).
    Invalid,
}

impl Feature {
    /// Parses a flag's value (`None`: the key is absent). Only `"1"` is on.
    pub fn parse(value: Option<&str>) -> Feature {
        match value {
            None => Feature::Absent,
            Some("0") => Feature::Off,
            Some("1") => Feature::On,
            Some(_) => Feature::Invalid,
        }
    }

    /// Whether the feature is on.
    pub fn enabled(self) -> bool {
        self == Feature::On
    }
}

/// When the frontend says `Connected` during [`Frontend::connect_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// Publish, switch to `Initialised`, wait for the backend's `Connected`, then switch to
    /// `Connected` (block devices: Linux's blkback connects on `Initialised`).
    InitialisedFirst,
    /// Publish and switch straight to `Connected`, then wait for the backend's `Connected`
    /// (network devices: Linux's netback connects only on the frontend's `Connected`).
    ConnectedFirst,
}

/// One frontend device and its backend.
pub struct Frontend<'x, T: Transport> {
    xs: &'x Xenstore<T>,
    node: String,
    backend: String,
    backend_id: DomId,
}

impl<'x, T: Transport> Frontend<'x, T> {
    /// Finds device `<class>/<index>` and its backend, validating what the toolstack wrote.
    pub async fn find(xs: &'x Xenstore<T>, class: &str, index: u32) -> Result<Self, XenbusError> {
        let node = format!("device/{class}/{index}");
        let backend = read_required(xs, &format!("{node}/backend")).await?;
        if !backend.starts_with("/local/domain/")
            || backend.contains("//")
            || backend.ends_with('/')
        {
            return Err(XenbusError::BadValue(format!("{node}/backend"), backend));
        }
        let id_path = format!("{node}/backend-id");
        let id = read_required(xs, &id_path).await?;
        let backend_id = id
            .parse::<DomId>()
            .ok()
            .filter(|&d| d < 0x7ff0)
            .ok_or_else(|| XenbusError::BadValue(id_path.clone(), id.clone()))?;
        Ok(Frontend {
            xs,
            node,
            backend,
            backend_id,
        })
    }

    /// Our node, e.g. `device/vif/0` (relative to our domain's home).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The backend's node (absolute).
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// The backend's domain.
    pub fn backend_id(&self) -> DomId {
        self.backend_id
    }

    /// The xenstore client.
    pub fn xenstore(&self) -> &'x Xenstore<T> {
        self.xs
    }

    /// Reads `<backend>/<key>`, `None` if absent.
    pub async fn backend_value(&self, key: &str) -> Result<Option<String>, XenbusError> {
        read_optional(self.xs, &format!("{}/{key}", self.backend)).await
    }

    /// Reads a backend feature flag (`feature-*`) as Linux does: `"1"` is on, anything else
    /// (absent, `"0"`, garbage) is off. A value other than `"0"` or `"1"` is logged; use
    /// [`backend_feature_value`](Self::backend_feature_value) to count it.
    pub async fn backend_feature(&self, key: &str) -> Result<bool, XenbusError> {
        Ok(self.backend_feature_value(key).await?.enabled())
    }

    /// Reads a backend feature flag and says what it held ([`Feature`]). A value other than
    /// `"0"` or `"1"` is logged as a warning.
    pub async fn backend_feature_value(&self, key: &str) -> Result<Feature, XenbusError> {
        let v = self.backend_value(key).await?;
        let f = Feature::parse(v.as_deref());
        if f == Feature::Invalid {
            log::warn!(
                "xenbus: {}/{key} holds {:?}, not \"0\" or \"1\": taken as off",
                self.backend,
                v.unwrap_or_default()
            );
        }
        Ok(f)
    }

    /// Reads `<node>/<key>` of our own device, `None` if absent.
    pub async fn value(&self, key: &str) -> Result<Option<String>, XenbusError> {
        read_optional(self.xs, &format!("{}/{key}", self.node)).await
    }

    /// Our state.
    pub async fn state(&self) -> Result<XenbusState, XenbusError> {
        parse_state(self.xs, &format!("{}/state", self.node)).await
    }

    /// The backend's state (`Unknown` if it has none yet).
    pub async fn backend_state(&self) -> Result<XenbusState, XenbusError> {
        parse_state(self.xs, &format!("{}/state", self.backend)).await
    }

    /// Switches our state.
    pub async fn switch_state(&self, state: XenbusState) -> Result<(), XenbusError> {
        self.switch_state_out_of_line(state).await
    }

    fn switch_state_out_of_line(
        &self,
        state: XenbusState,
    ) -> OutOfLine<'_, Result<(), XenbusError>> {
        Box::pin(async move {
            self.xs
                .write(&format!("{}/state", self.node), state.as_str())
                .await?;
            Ok(())
        })
    }

    /// Waits until the backend's state satisfies `done`, through a watch on it. Fails if the
    /// backend closes (unless `done` accepts that).
    pub async fn wait_backend(
        &self,
        done: impl Fn(XenbusState) -> bool,
    ) -> Result<XenbusState, XenbusError> {
        self.wait_backend_out_of_line(&done).await
    }

    fn wait_backend_out_of_line<'a>(
        &'a self,
        done: &'a dyn Fn(XenbusState) -> bool,
    ) -> OutOfLine<'a, Result<XenbusState, XenbusError>> {
        Box::pin(self.wait_backend_dyn(done))
    }

    async fn wait_backend_dyn(
        &self,
        done: &dyn Fn(XenbusState) -> bool,
    ) -> Result<XenbusState, XenbusError> {
        let path = format!("{}/state", self.backend);
        let token = format!("xenbus:{}", self.node);
        let mut watch = self.xs.watch(&path, &token).await?;
        let result = loop {
            let s = self.backend_state().await?;
            if done(s) {
                break Ok(s);
            }
            if matches!(s, XenbusState::Closing | XenbusState::Closed) {
                break Err(XenbusError::BackendClosed(s));
            }
            match watch.next_event().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(e.into()),
                None => break Err(XenbusError::Missing(path.clone())),
            }
        };
        let _ = self.xs.unwatch(watch).await;
        result
    }

    /// The frontend handshake of block-style devices ([`Handshake::InitialisedFirst`]).
    pub async fn connect<F, Fut>(&self, publish: F) -> Result<(), XenbusError>
    where
        F: Fn(Transaction<'x, T>, String) -> Fut,
        Fut: Future<Output = Result<(), XenstoreError>>,
    {
        self.connect_with(Handshake::InitialisedFirst, publish)
            .await
    }

    /// The frontend handshake: wait for the backend's `InitWait`, publish our keys with
    /// `publish` and switch state in one transaction (retried on conflicts), then wait for the
    /// backend's `Connected`. `handshake` says whether we switch to `Initialised` and only then
    /// to `Connected`, or straight to `Connected`.
    pub async fn connect_with<F, Fut>(
        &self,
        handshake: Handshake,
        publish: F,
    ) -> Result<(), XenbusError>
    where
        F: Fn(Transaction<'x, T>, String) -> Fut,
        Fut: Future<Output = Result<(), XenstoreError>>,
    {
        self.switch_state(XenbusState::Initialising).await?;
        self.wait_backend(|s| matches!(s, XenbusState::InitWait | XenbusState::Connected))
            .await?;
        let node = self.node.clone();
        let published = match handshake {
            Handshake::InitialisedFirst => XenbusState::Initialised,
            Handshake::ConnectedFirst => XenbusState::Connected,
        };
        self.xs
            .transaction(|tx| {
                let fut = publish(tx, node.clone());
                let state_path = format!("{node}/state");
                async move {
                    fut.await?;
                    tx.write(&state_path, published.as_str()).await
                }
            })
            .await?;
        self.wait_backend(|s| s == XenbusState::Connected).await?;
        if published != XenbusState::Connected {
            self.switch_state(XenbusState::Connected).await?;
        }
        Ok(())
    }

    /// Closes the device: `Closing`, wait for the backend to close, `Closed`.
    pub async fn close(&self) -> Result<(), XenbusError> {
        self.switch_state(XenbusState::Closing).await?;
        self.wait_backend(|s| {
            matches!(
                s,
                XenbusState::Closing | XenbusState::Closed | XenbusState::Unknown
            )
        })
        .await?;
        self.switch_state(XenbusState::Closed).await
    }
}

fn read_optional<'a, T: Transport>(
    xs: &'a Xenstore<T>,
    path: &'a str,
) -> OutOfLine<'a, Result<Option<String>, XenbusError>> {
    Box::pin(async move {
        match xs.read_optional(path).await? {
            None => Ok(None),
            Some(v) => String::from_utf8(v).map(Some).map_err(|e| {
                XenbusError::BadValue(path.into(), String::from_utf8_lossy(e.as_bytes()).into())
            }),
        }
    })
}

async fn read_required<T: Transport>(xs: &Xenstore<T>, path: &str) -> Result<String, XenbusError> {
    read_optional(xs, path)
        .await?
        .ok_or_else(|| XenbusError::Missing(path.into()))
}

async fn parse_state<T: Transport>(
    xs: &Xenstore<T>,
    path: &str,
) -> Result<XenbusState, XenbusError> {
    match read_optional(xs, path).await? {
        None => Ok(XenbusState::Unknown),
        Some(v) => {
            XenbusState::from_bytes(v.as_bytes()).map_err(|_| XenbusError::BadValue(path.into(), v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Feature;

    #[test]
    fn only_1_turns_a_feature_on() {
        assert_eq!(Feature::parse(Some("1")), Feature::On);
        assert_eq!(Feature::parse(Some("0")), Feature::Off);
        assert_eq!(Feature::parse(None), Feature::Absent);
        for v in ["garbage", "2", "", " 1", "1\n", "01", "true", "-1"] {
            assert_eq!(Feature::parse(Some(v)), Feature::Invalid, "{v:?}");
            assert!(!Feature::parse(Some(v)).enabled(), "{v:?}");
        }
        assert!(Feature::On.enabled());
        assert!(!Feature::Off.enabled() && !Feature::Absent.enabled());
    }
}
