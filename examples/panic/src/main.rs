//! A guest that panics on purpose, to show what a crash looks like (the message and location on
//! the console, then the domain crashes).
#![cfg_attr(target_os = "none", no_std, no_main)]

xenia::main! {
    async fn main() {
        xenia::println!("about to panic");
        let reason = xenia::cmdline_arg("reason").unwrap_or("no reason given");
        panic!("deliberate panic from the panic example ({reason})");
    }
}
