//! `memory::release_free_heap` really gives freed heap pages back to the kernel.

/// Anonymous resident memory of this process, in KiB (glibc's heap lives there).
fn rss_anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).expect("RssAnon in /proc/self/status");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("RssAnon value")
}

#[test]
fn freed_heap_below_live_data_is_returned() {
    // The shape of a load: many small blocks of garbage, then live data above them, then
    // the garbage freed. glibc trims only an arena's top by itself, so the freed blocks
    // stay resident until release_free_heap. Done on a thread of its own, so that the
    // blocks share one arena with nothing else of the test harness's.
    let (before, after) = std::thread::spawn(|| {
        let garbage: Vec<Vec<u8>> = (0..16_384).map(|i| vec![i as u8; 2_000]).collect();
        let live: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 2_000]).collect();
        drop(garbage);
        let before = rss_anon_kib();
        ztp_runtime::memory::release_free_heap();
        let after = rss_anon_kib();
        assert_eq!(live.iter().map(|v| v.len()).sum::<usize>(), 128_000, "live data kept");
        (before, after)
    })
    .join()
    .expect("allocating thread");
    // 16,384 blocks of 2,000 bytes: about 32 MiB freed; most of it must leave.
    assert!(
        before.saturating_sub(after) > 16 * 1024,
        "RssAnon {before} KiB before release_free_heap, {after} KiB after: under 16 MiB returned"
    );
}
