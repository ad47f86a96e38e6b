//! Talks to xenstore: reads who it is, writes a key for dom0, waits for a key from dom0, then
//! serves until the toolstack asks it to shut down or reboot (`xl shutdown`, `xl reboot`),
//! which the runtime handles through its `control/shutdown` watch.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[xenia::main]
async fn main() -> Result<(), xenia_xen::xenstore::XenstoreError> {
    #[cfg(target_os = "none")]
    {
        use core::time::Duration;
        let xs = xenia::xenstore();
        let domid = xs.read_string("domid").await?;
        let name = xs.read_string("name").await?;
        let vm = xs.read_string("vm").await?;
        xenia::println!("xenstore: domid={domid} name={name} vm={vm}");

        xs.write("data/xenia-greeting", "hello-from-xenia").await?;
        xenia::println!("xenstore: wrote data/xenia-greeting");

        // Wait (through a watch, not by polling) for dom0 to write us a key.
        let mut watch = xs.watch("data/from-dom0", "from-dom0").await?;
        let value = loop {
            if let Some(v) = xs.read_optional("data/from-dom0").await? {
                if !v.is_empty() {
                    break v;
                }
            }
            match watch.next_event().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        };
        xenia::println!(
            "xenstore: dom0 says {}",
            core::str::from_utf8(&value).unwrap_or("<not utf-8>")
        );
        xs.unwatch(watch).await?;

        let t0 = xenia::time::Instant::now();
        xenia::sleep(Duration::from_millis(100)).await;
        xenia::println!(
            "timer: slept 100 ms, measured {} ms",
            t0.elapsed().as_millis()
        );

        xenia::println!("xenstore: waiting for the toolstack");
        core::future::pending::<()>().await;
    }
    #[allow(unreachable_code)]
    Ok(())
}
