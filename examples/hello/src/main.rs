//! The smallest Xenia guest: says hello, reports its memory, command line and boot time, and
//! powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[xenia::main]
async fn main() {
    xenia::println!("hello from xenia");
    #[cfg(target_os = "none")]
    {
        let info = xenia::boot_info();
        xenia::println!("memory: {} MiB", info.nr_pages * 4096 / (1024 * 1024));
        xenia::println!("cmdline: {}", xenia::cmdline());
        xenia::println!("entry to main: {} ns", xenia::boot_ns());
    }
}
