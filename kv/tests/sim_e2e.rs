//! The store on `xenia::block` against the simulated host and blkback, end to end through the
//! runtime's executor: format, puts and deletes, "reboot" (a second store on the disk's bytes),
//! a torn tail on the backend's disk, and blkback error statuses (an error, never corruption).
//! One test: the runtime boots once a process.

use xenia_kv::{KvError, Options, Stop, Store};
use xenia_sim::blkback::{Blkback, VbdConfig};

#[test]
fn store_on_xenia_block_against_the_simulated_blkback() {
    let sim = xenia_sim::runtime::boot();
    // xvda: the store; xvdb: a second disk that gets a copy of xvda's bytes ("reboot").
    let a = Blkback::add(
        &sim,
        VbdConfig {
            sectors: 16384,
            ..VbdConfig::default()
        },
    );
    let b = Blkback::add(
        &sim,
        VbdConfig {
            index: 51728,
            name: "xvdb".into(),
            sectors: 16384,
            ..VbdConfig::default()
        },
    );
    let (a2, b2) = (a.clone(), b.clone());
    xenia::block_on(async move {
        let (a, b) = (a2, b2);
        let disk = xenia::block::open("xvda").await.unwrap();
        let (store, rec) = Store::open(disk, Options::default()).await.unwrap();
        assert!(rec.formatted);
        assert_eq!(rec.records, 0);

        let big: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
        store.put(b"big", &big).await.unwrap();
        for i in 0..50u32 {
            let v = format!("value-{i}-").repeat(i as usize + 1);
            store
                .put(format!("k{i}").as_bytes(), v.as_bytes())
                .await
                .unwrap();
        }
        assert!(store.delete(b"k7").await.unwrap());
        store.put(b"k3", b"three again").await.unwrap();
        // Each acknowledged write was followed by a flush the backend saw.
        let flushes = a
            .state()
            .stats
            .ops
            .iter()
            .filter(|o| o.0 == xenia_xen::abi::BLKIF_OP_FLUSH_DISKCACHE)
            .count();
        assert_eq!(flushes, 1 + 1 + 50 + 2, "format + puts + delete + put");

        // blkback answers writes to one sector with an error: the put fails, is not served,
        // and the store goes on over it.
        let tail_sector = (log_end(&store) / 512) + 1;
        a.state().faults.error_sectors = vec![tail_sector];
        let r = store.put(b"doomed", &[5u8; 4000]).await;
        assert!(matches!(r, Err(KvError::Device(_))), "{r:?}");
        assert_eq!(store.get(b"doomed").await.unwrap(), None);
        a.state().faults.error_sectors.clear();
        store.put(b"after-error", b"ok").await.unwrap();
        // A read error on GET is an error, not data.
        let loc_sector = tail_sector - 1;
        a.state().faults.error_sectors = vec![loc_sector];
        assert!(matches!(
            store.get(b"after-error").await,
            Err(KvError::Device(_))
        ));
        a.state().faults.error_sectors.clear();
        assert_eq!(
            store.get(b"after-error").await.unwrap().as_deref(),
            Some(&b"ok"[..])
        );

        // "Reboot": the disk's bytes on another vbd, with the last record torn half-way.
        let mut image = a.state().disk.clone();
        let end = log_end(&store) as usize;
        store.put(b"torn", &[9u8; 3000]).await.unwrap();
        let torn_len = 3000 + 36 + 4;
        image[end..end + torn_len / 2].copy_from_slice(&a.state().disk[end..end + torn_len / 2]);
        b.state().disk.copy_from_slice(&image);

        let disk2 = xenia::block::open("xvdb").await.unwrap();
        let (s2, rec2) = Store::open(disk2, Options::default()).await.unwrap();
        assert!(!rec2.formatted);
        assert_eq!(rec2.stop, Stop::Invalid, "the torn record ends the log");
        assert_eq!(rec2.records, 1 + 50 + 2 + 1);
        assert_eq!(s2.get(b"big").await.unwrap().as_ref(), Some(&big));
        for i in 0..50u32 {
            let got = s2.get(format!("k{i}").as_bytes()).await.unwrap();
            let want = match i {
                7 => None,
                3 => Some(b"three again".to_vec()),
                _ => Some(format!("value-{i}-").repeat(i as usize + 1).into_bytes()),
            };
            assert_eq!(got, want, "k{i}");
        }
        assert_eq!(s2.get(b"torn").await.unwrap(), None);
        assert_eq!(s2.get(b"doomed").await.unwrap(), None);
        assert_eq!(s2.len(), 1 + 49 + 1);
    });
}

/// Where the next record goes.
fn log_end<D: xenia_kv::Device>(s: &Store<D>) -> u64 {
    xenia_kv::format::LOG_START + s.stats().log_bytes
}
