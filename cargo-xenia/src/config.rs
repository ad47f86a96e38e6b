//! An app's `[package.metadata.xenia]`: the domain it wants, validated.
//!
//! Keys (anything else is an error, to catch typos):
//!
//! | key | value | default |
//! |---|---|---|
//! | `memory` | MiB, a positive integer | required |
//! | `vcpus` | a positive integer | 1 |
//! | `cmdline` | the guest's command line (xl `extra`) | `""` |
//! | `vifs` | xl vif specs, e.g. `["bridge=xenbr0"]` | none |
//! | `disks` | xl disk specs, e.g. `["format=raw,vdev=xvda,access=rw,target=/srv/app.img"]` | none |
//! | `on_crash` | `destroy`, `restart`, `rename-restart`, `preserve`, `coredump-destroy`, `coredump-restart`, `soft-reset` | `preserve` |
//! | `gdb` | `true`: a second PV console for the GDB stub (xl `channel`s, served by QEMU in dom0 with a pty) and `debug=gdb` on the command line | `false` |
//!
//! Strings must not hold what an xl configuration cannot quote (`"`, `\`, control characters).

use crate::err;
use crate::error::Result;
use serde_json::Value;

/// The keys `[package.metadata.xenia]` may have.
pub const KNOWN: &[&str] = &[
    "memory", "vcpus", "cmdline", "vifs", "disks", "on_crash", "gdb",
];

/// xl's `on_crash` actions.
pub const ON_CRASH: &[&str] = &[
    "destroy",
    "restart",
    "rename-restart",
    "preserve",
    "coredump-destroy",
    "coredump-restart",
    "soft-reset",
];

/// A validated `[package.metadata.xenia]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainConfig {
    /// The domain's name (the package's name).
    pub name: String,
    /// Memory in MiB.
    pub memory: u64,
    /// Virtual CPUs.
    pub vcpus: u64,
    /// The guest's command line.
    pub cmdline: String,
    /// xl vif specs.
    pub vifs: Vec<String>,
    /// xl disk specs.
    pub disks: Vec<String>,
    /// xl's `on_crash` action.
    pub on_crash: String,
    /// A console for the GDB stub (`debug=gdb` is then part of `cmdline`).
    pub gdb: bool,
}

/// Checks that `value` can stand in an xl config string.
pub fn xl_string(what: &str, value: &str) -> Result<()> {
    if let Some(c) = value
        .chars()
        .find(|&c| c == '"' || c == '\\' || c.is_control())
    {
        return Err(err!(
            "{what} {value:?} contains {c:?}, which an xl config string cannot hold"
        ));
    }
    Ok(())
}

fn positive(what: &str, v: &Value) -> Result<u64> {
    match v.as_u64() {
        Some(n) if n > 0 && !v.is_boolean() => Ok(n),
        _ => Err(err!("{what} must be a positive integer, got {v}")),
    }
}

fn string(what: &str, v: &Value) -> Result<String> {
    let s = v
        .as_str()
        .ok_or_else(|| err!("{what} must be a string, got {v}"))?;
    xl_string(what, s)?;
    Ok(s.to_string())
}

fn strings(what: &str, v: &Value) -> Result<Vec<String>> {
    let list = v
        .as_array()
        .ok_or_else(|| err!("{what} must be a list of strings, got {v}"))?;
    list.iter()
        .map(|e| string(&format!("{what} entry"), e))
        .collect()
}

impl DomainConfig {
    /// Validates the `xenia` table of package `name`'s metadata (`metadata` is the package's
    /// whole `metadata` value from `cargo metadata`, or null).
    pub fn from_metadata(name: &str, metadata: &Value) -> Result<Self> {
        let table = metadata.get("xenia").ok_or_else(|| {
            err!("package {name} has no [package.metadata.xenia] table (it needs at least `memory = <MiB>`)")
        })?;
        let x = table.as_object().ok_or_else(|| {
            err!("[package.metadata.xenia] of {name} must be a table, got {table}")
        })?;
        let mut unknown: Vec<&str> = x
            .keys()
            .map(String::as_str)
            .filter(|k| !KNOWN.contains(k))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(err!(
                "unknown keys in [package.metadata.xenia] of {name}: {unknown:?}; known: {KNOWN:?}"
            ));
        }
        xl_string("name", name)?;
        let memory = positive(
            "memory",
            x.get("memory")
                .ok_or_else(|| err!("[package.metadata.xenia] of {name} needs memory (MiB)"))?,
        )?;
        let vcpus = x.get("vcpus").map_or(Ok(1), |v| positive("vcpus", v))?;
        let mut cmdline = x
            .get("cmdline")
            .map_or(Ok(String::new()), |v| string("cmdline", v))?;
        let gdb = match x.get("gdb") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(err!("gdb must be true or false, got {v}")),
        };
        if gdb {
            cmdline = format!("{cmdline} debug=gdb").trim().to_string();
        }
        let vifs = x
            .get("vifs")
            .map_or(Ok(Vec::new()), |v| strings("vifs", v))?;
        let disks = x
            .get("disks")
            .map_or(Ok(Vec::new()), |v| strings("disks", v))?;
        let on_crash = x
            .get("on_crash")
            .map_or(Ok("preserve".to_string()), |v| string("on_crash", v))?;
        if !ON_CRASH.contains(&on_crash.as_str()) {
            return Err(err!(
                "on_crash must be one of {ON_CRASH:?}, got {on_crash:?}"
            ));
        }
        Ok(DomainConfig {
            name: name.to_string(),
            memory,
            vcpus,
            cmdline,
            vifs,
            disks,
            on_crash,
            gdb,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(x: Value) -> Result<DomainConfig> {
        DomainConfig::from_metadata("app", &json!({ "xenia": x }))
    }

    #[test]
    fn defaults() {
        let c = cfg(json!({ "memory": 32 })).unwrap();
        assert_eq!(c.memory, 32);
        assert_eq!(c.vcpus, 1);
        assert_eq!(c.cmdline, "");
        assert!(c.vifs.is_empty() && c.disks.is_empty());
        assert_eq!(c.on_crash, "preserve");
    }

    #[test]
    fn everything() {
        let c = cfg(json!({ "memory": 64, "vcpus": 2, "cmdline": "ip=10.0.0.2/24",
            "vifs": ["bridge=xenbr0"], "disks": ["vdev=xvda,target=/d.img"], "on_crash": "destroy" }))
        .unwrap();
        assert_eq!(c.vcpus, 2);
        assert_eq!(c.vifs, ["bridge=xenbr0"]);
        assert_eq!(c.disks, ["vdev=xvda,target=/d.img"]);
        assert_eq!(c.on_crash, "destroy");
    }

    #[test]
    fn errors_are_clear() {
        let e = |x| cfg(x).unwrap_err().0;
        assert!(DomainConfig::from_metadata("app", &json!({}))
            .unwrap_err()
            .0
            .contains("no [package.metadata.xenia]"));
        assert!(e(json!({ "memroy": 32 })).contains("unknown keys"));
        assert!(e(json!({ "memroy": 32 })).contains("memroy"));
        assert!(e(json!({ "vcpus": 1 })).contains("needs memory"));
        assert!(e(json!({ "memory": 0 })).contains("positive integer"));
        assert!(e(json!({ "memory": -1 })).contains("positive integer"));
        assert!(e(json!({ "memory": "32" })).contains("positive integer"));
        assert!(e(json!({ "memory": 1.5 })).contains("positive integer"));
        assert!(e(json!({ "memory": true })).contains("positive integer"));
        assert!(e(json!({ "memory": 32, "cmdline": "a\"b" })).contains("cannot hold"));
        assert!(e(json!({ "memory": 32, "cmdline": "a\nb" })).contains("cannot hold"));
        assert!(e(json!({ "memory": 32, "vifs": "bridge=xenbr0" })).contains("list of strings"));
        assert!(e(json!({ "memory": 32, "disks": [1] })).contains("must be a string"));
        assert!(
            e(json!({ "memory": 32, "on_crash": "explode" })).contains("on_crash must be one of")
        );
        assert!(cfg(json!(5)).unwrap_err().0.contains("must be a table"));
    }
}
