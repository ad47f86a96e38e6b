//! A crash-safe key-value store on the domain's disk `xvda` (engine: the `xenia-kv` crate).
//!
//! The command line picks the mode:
//!
//! - `kv.mode=serve` (default): the HTTP front end on port 80 (GET/PUT/DELETE `/kv/<key>`,
//!   `GET /kv`; see the library), with `ip=` and `gw=` as xenia::net reads them.
//! - `kv.mode=fill kv.n=N`: opens the store, checks every `fill-<i>` key it recovered against
//!   the value it must hold, reports `kv: recovered ...`, then PUTs `fill-<i>` for the next N
//!   numbers, printing `kv: acked fill-<i>` after each PUT is written and flushed, and powers
//!   off. A crash (`xl destroy`) in the middle and a second boot show what survived.
//! - `kv.mode=pattern`: a raw-disk check without the store: writes a known pattern to the
//!   first 128 sectors and a marker to the last sector, flushes, reads them back, powers off
//!   (dom0 then compares the backing file).
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

mod modes;

#[xenia::main]
async fn main() -> Result<(), modes::AppError> {
    modes::run().await
}
