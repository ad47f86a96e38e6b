//! The libvirt domain XML of an app's domain (libvirt's Xen driver, libxl): the same domain as
//! the xl config, for hosts managed by libvirt (`virsh create <app>.xml`) and what sits on it.
//!
//! xl's vif and disk specs are translated key by key; a key that has no libvirt equivalent
//! here is an error rather than silently dropped. vif keys: `bridge`, `mac`, `ip`, `script`,
//! `vifname`. disk keys: `target` (required), `vdev` (required), `format`, `access`,
//! `devtype`, `backendtype` (the positional form `path,format,vdev,access` is refused: write
//! the keys).

use crate::config::DomainConfig;
use crate::err;
use crate::error::Result;

/// `s` escaped for XML text and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The `key=value` pairs of an xl device spec.
fn pairs<'a>(what: &str, spec: &'a str) -> Result<Vec<(&'a str, &'a str)>> {
    spec.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| {
                    err!("{what} {spec:?}: {p:?} is not key=value (write xl's key=value form)")
                })
        })
        .collect()
}

fn interface(spec: &str) -> Result<String> {
    let mut bridge = None;
    let mut extra = String::new();
    for (k, v) in pairs("vif", spec)? {
        match k {
            "bridge" => bridge = Some(v),
            "mac" => extra += &format!("      <mac address='{}'/>\n", esc(v)),
            "ip" => extra += &format!("      <ip address='{}'/>\n", esc(v)),
            "script" => extra += &format!("      <script path='{}'/>\n", esc(v)),
            "vifname" => extra += &format!("      <target dev='{}'/>\n", esc(v)),
            _ => {
                return Err(err!(
                    "vif {spec:?}: key {k:?} has no libvirt translation here (known: bridge, mac, ip, script, vifname)"
                ))
            }
        }
    }
    Ok(match bridge {
        Some(b) => format!(
            "    <interface type='bridge'>\n      <source bridge='{}'/>\n{extra}    </interface>\n",
            esc(b)
        ),
        None => format!("    <interface type='ethernet'>\n{extra}    </interface>\n"),
    })
}

fn disk(spec: &str) -> Result<String> {
    let (mut target, mut vdev, mut format, mut readonly, mut device, mut driver) =
        (None, None, None, false, "disk", None);
    for (k, v) in pairs("disk", spec)? {
        match k {
            "target" => target = Some(v),
            "vdev" => vdev = Some(v),
            "format" => format = Some(v),
            "access" => match v {
                "r" | "ro" => readonly = true,
                "w" | "rw" => readonly = false,
                _ => return Err(err!("disk {spec:?}: access={v} is not r, ro, w or rw")),
            },
            "devtype" => match v {
                "cdrom" => device = "cdrom",
                "disk" => device = "disk",
                _ => return Err(err!("disk {spec:?}: devtype={v} is not disk or cdrom")),
            },
            "backendtype" => match v {
                "phy" | "qdisk" | "tap" => driver = Some(if v == "qdisk" { "qemu" } else { v }),
                _ => return Err(err!("disk {spec:?}: backendtype={v} is not phy, qdisk or tap")),
            },
            _ => {
                return Err(err!(
                    "disk {spec:?}: key {k:?} has no libvirt translation here (known: target, vdev, format, access, devtype, backendtype)"
                ))
            }
        }
    }
    let target = target.ok_or_else(|| err!("disk {spec:?} has no target="))?;
    let vdev = vdev.ok_or_else(|| err!("disk {spec:?} has no vdev="))?;
    let (kind, attr) = if target.starts_with("/dev/") {
        ("block", "dev")
    } else {
        ("file", "file")
    };
    let mut drv = String::new();
    if driver.is_some() || format.is_some() {
        drv = "      <driver".into();
        if let Some(d) = driver {
            drv += &format!(" name='{}'", esc(d));
        }
        if let Some(f) = format {
            drv += &format!(" type='{}'", esc(f));
        }
        drv += "/>\n";
    }
    Ok(format!(
        "    <disk type='{kind}' device='{device}'>\n{drv}      <source {attr}='{}'/>\n      <target dev='{}' bus='xen'/>\n{}    </disk>\n",
        esc(target),
        esc(vdev),
        if readonly { "      <readonly/>\n" } else { "" }
    ))
}

/// The domain XML for `cfg`, booting the image at `kernel`.
pub fn render(cfg: &DomainConfig, kernel: &str) -> Result<String> {
    let mut devices = String::new();
    for v in &cfg.vifs {
        devices += &interface(v)?;
    }
    for d in &cfg.disks {
        devices += &disk(d)?;
    }
    if cfg.gdb {
        // The GDB stub's console (device/console/1): libvirt's libxl driver numbers channels
        // itself, so the placeholder xl 4.17 needs (see crate::xl::GDB_CHANNELS) is left out.
        devices += "    <channel type='pty'>\n      <target type='xen' name='org.xenia.gdb'/>\n    </channel>\n";
    }
    // libvirt spells xl's other on_crash actions the same way.
    if cfg.on_crash == "soft-reset" {
        return Err(err!(
            "on_crash = \"soft-reset\" has no libvirt equivalent; pick another action"
        ));
    }
    let cmdline = if cfg.cmdline.is_empty() {
        String::new()
    } else {
        format!("    <cmdline>{}</cmdline>\n", esc(&cfg.cmdline))
    };
    Ok(format!(
        "<!-- Generated by cargo xenia build from [package.metadata.xenia]; do not edit. -->\n\
         <domain type='xen'>\n\
         \x20 <name>{name}</name>\n\
         \x20 <memory unit='MiB'>{mem}</memory>\n\
         \x20 <vcpu>{vcpus}</vcpu>\n\
         \x20 <os>\n\
         \x20   <type arch='x86_64' machine='xenpv'>linux</type>\n\
         \x20   <kernel>{kernel}</kernel>\n\
         {cmdline}\
         \x20 </os>\n\
         \x20 <on_poweroff>destroy</on_poweroff>\n\
         \x20 <on_reboot>restart</on_reboot>\n\
         \x20 <on_crash>{crash}</on_crash>\n\
         \x20 <devices>\n\
         {devices}\
         \x20   <console type='pty'>\n\
         \x20     <target type='xen' port='0'/>\n\
         \x20   </console>\n\
         \x20 </devices>\n\
         </domain>\n",
        name = esc(&cfg.name),
        mem = cfg.memory,
        vcpus = cfg.vcpus,
        kernel = esc(kernel),
        crash = cfg.on_crash,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DomainConfig {
        DomainConfig {
            name: "app".into(),
            memory: 32,
            vcpus: 1,
            cmdline: "ip=10.0.0.2/24 a<b".into(),
            vifs: vec!["bridge=xenbr0,mac=00:16:3e:00:00:01".into()],
            disks: vec!["format=raw,vdev=xvda,access=rw,target=/srv/d.img".into()],
            on_crash: "preserve".into(),
            gdb: false,
        }
    }

    #[test]
    fn renders_devices() {
        let xml = render(&cfg(), "/srv/app.xen").unwrap();
        assert!(xml.contains("<domain type='xen'>"));
        assert!(xml.contains("<kernel>/srv/app.xen</kernel>"));
        assert!(xml.contains("<cmdline>ip=10.0.0.2/24 a&lt;b</cmdline>"));
        assert!(xml.contains("<source bridge='xenbr0'/>"));
        assert!(xml.contains("<mac address='00:16:3e:00:00:01'/>"));
        assert!(xml.contains("<source file='/srv/d.img'/>"));
        assert!(xml.contains("<target dev='xvda' bus='xen'/>"));
        assert!(xml.contains("<driver type='raw'/>"));
        assert!(xml.contains("<on_crash>preserve</on_crash>"));
    }

    /// Every device form this module writes passes libvirt's own schema check, when
    /// `virt-xml-validate` is installed (scripts/test installs it).
    #[test]
    fn devices_validate_with_libvirt_schema() {
        let mut c = cfg();
        c.vifs
            .push("mac=00:16:3e:00:00:02,ip=10.0.0.3,script=vif-bridge,vifname=v1".into());
        c.disks
            .push("vdev=xvdb,access=ro,devtype=cdrom,target=/srv/cd.iso".into());
        c.disks
            .push("vdev=xvdc,backendtype=phy,target=/dev/vg/data".into());
        c.on_crash = "coredump-restart".into();
        let xml = render(&c, "/srv/app.xen").unwrap();
        let path = std::env::temp_dir().join(format!("xenia-libvirt-{}.xml", std::process::id()));
        std::fs::write(&path, &xml).unwrap();
        let out = std::process::Command::new("virt-xml-validate")
            .arg(&path)
            .arg("domain")
            .output();
        let _ = std::fs::remove_file(&path);
        match out {
            Ok(o) => assert!(
                o.status.success(),
                "{}{}\n{xml}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(_) => eprintln!("virt-xml-validate is not installed: not validated"),
        }
    }

    #[test]
    fn refuses_what_it_cannot_translate() {
        let mut c = cfg();
        c.vifs = vec!["bridge=xenbr0,rate=10Mb/s".into()];
        assert!(render(&c, "/k").unwrap_err().0.contains("\"rate\""));
        let mut c = cfg();
        c.disks = vec!["/srv/d.img,raw,xvda,rw".into()];
        assert!(render(&c, "/k").unwrap_err().0.contains("key=value"));
        let mut c = cfg();
        c.disks = vec!["vdev=xvda".into()];
        assert!(render(&c, "/k").unwrap_err().0.contains("no target"));
    }
}
