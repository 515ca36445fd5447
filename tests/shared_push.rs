//! Compress once, send to many (issue 17): when several hosts are pushed from
//! the deployer, each path is framed once (`nix::frames`) and every host that
//! lacks it gets the same bytes; incompressible data is framed raw. The hosts
//! are testbed hosts whose real `zstd -d | nix-store --serve --write` must
//! accept the assembled stream.

mod common;

use common::fleet::Fleet;
use common::testbed::{self, Testbed};

fn salt() -> String {
    format!("{}-{:?}", std::process::id(), std::time::Instant::now())
}

#[test]
fn three_hosts_take_shared_frames_and_random_data_travels_raw() {
    if !testbed::require() || !common::have_tools(&["zstd"]) {
        return;
    }
    let tb = Testbed::new(3);
    let fleet = Fleet::new(&tb);

    // Random payload: framed raw, so the wire carries about the NAR bytes
    // (a zstd attempt on random data would cost CPU for nothing).
    fleet.steer(&format!(
        "payload = {{ count = 2; size = 1500000; salt = \"{}\"; }};",
        salt()
    ));
    let (code, r, stderr) = fleet.deploy(&["t0", "t1", "t2", "--compress", "yes"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    for h in ["t0", "t1", "t2"] {
        let res = &r[h];
        assert_eq!(res["result"], "deployed", "{res}");
        let nar = res["bytes_pushed"].as_u64().unwrap();
        let wire = res["bytes_sent"].as_u64().unwrap();
        assert!(nar > 3_000_000, "{res}");
        assert!(
            wire > nar * 99 / 100 && wire < nar + nar / 100 + 4096,
            "{h}: random data framed raw: {wire} on the wire for {nar} NAR bytes"
        );
        let top = res["store_path"].as_str().unwrap();
        assert_eq!(
            tb.hosts[h[1..].parse::<usize>().unwrap()].current_system(),
            top
        );
    }

    // Real files: compressed, once, to well under the NAR size.
    fleet.steer(&format!(
        "payload = {{ count = 2; size = 1500000; real = true; salt = \"{}\"; }};",
        salt()
    ));
    let (code, r, stderr) = fleet.deploy(&["t0", "t1", "t2"]);
    assert_eq!(code, 0, "{stderr}\n{r}");
    for h in ["t0", "t1", "t2"] {
        let res = &r[h];
        assert_eq!(res["result"], "deployed", "{res}");
        let nar = res["bytes_pushed"].as_u64().unwrap();
        let wire = res["bytes_sent"].as_u64().unwrap();
        assert!(
            wire * 10 < nar * 8,
            "{h}: {wire} on the wire for {nar} NAR bytes"
        );
    }
}
