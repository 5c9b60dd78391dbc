//! Device status store: Apstra's device rows plus a full per-device event log, in SQLite
//! (WAL, `synchronous=FULL`) in the state directory, so that a report acknowledged to a
//! device survives kill -9.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::clock::now_rfc3339;
use crate::group_commit::GroupCommit;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("status database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("status database lock poisoned")]
    Poisoned,
    /// The batch this report was written in failed (the cause, as text: one error is
    /// shared by every report of the batch).
    #[error("status database: {0}")]
    Batch(String),
}

/// One device row, as `GET /api/ztp/device/status` returns it (Apstra's field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRow {
    pub ip_addr: String,
    pub system_id: String,
    pub platform: String,
    pub status: String,
    pub task: String,
    pub last_log: String,
    pub last_updated_at: String,
    pub name: Option<String>,
    pub mac: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub at: String,
    pub kind: String,
    pub text: String,
}

/// A progress report from a bootstrap script (`POST /api/ztp/device/log`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub ip: String,
    #[serde(default)]
    pub system_id: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub task: Option<String>,
    #[serde(default)]
    pub log: Option<String>,
}

/// Apstra's task → status rule (reference/apstra-ztp.md §4): "Device Ready" completes,
/// "ZTP Failed" fails, anything else is progress.
pub fn status_for(task: &str) -> &'static str {
    match task {
        "Device Ready" => "completed",
        "ZTP Failed" => "failed",
        _ => "in_progress",
    }
}

/// Field limits: a report is a line of progress, not a file upload.
pub const MAX_FIELD: usize = 4096;

pub struct Store {
    /// None while the database cannot be opened (a full or read-only state directory
    /// at start-up): every use tries again.
    conn: Mutex<Option<Connection>>,
    path: PathBuf,
    /// Reports wait here to share a transaction (and its fsync) with their neighbours.
    reports: GroupCommit<Report, Result<DeviceRow, StoreError>>,
}

fn connect(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         PRAGMA synchronous=FULL;
         PRAGMA busy_timeout=5000;
         CREATE TABLE IF NOT EXISTS devices (
             ip TEXT PRIMARY KEY, system_id TEXT NOT NULL DEFAULT '', platform TEXT NOT NULL DEFAULT '',
             status TEXT NOT NULL, task TEXT NOT NULL DEFAULT '', last_log TEXT NOT NULL DEFAULT '',
             updated_at TEXT NOT NULL, name TEXT, mac TEXT);
         CREATE TABLE IF NOT EXISTS events (
             id INTEGER PRIMARY KEY, ip TEXT NOT NULL, at TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS events_ip ON events(ip, id);",
    )?;
    Ok(conn)
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join("status.sqlite");
        let conn = connect(&path)?;
        Ok(Store { conn: Mutex::new(Some(conn)), path, reports: GroupCommit::default() })
    }

    /// [`Store::open`], or, when the database cannot be opened now, a store that logs
    /// it, shows it as a storage failure and tries again on every use, so that the
    /// runtime still serves addresses and files meanwhile.
    pub fn open_or_retry(dir: &Path) -> Store {
        Store::open(dir).unwrap_or_else(|e| {
            crate::storage::STORAGE.failed("status database", &e.to_string());
            Store { conn: Mutex::new(None), path: dir.join("status.sqlite"), reports: GroupCommit::default() }
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StoreError> {
        let mut guard = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        if guard.is_none() {
            *guard = Some(connect(&self.path)?);
        }
        match guard.as_mut() {
            Some(c) => Ok(f(c)?),
            None => Err(StoreError::Poisoned),
        }
    }

    /// [`Store::with`] for a write: its outcome is the status database's storage health.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StoreError> {
        let r = self.with(f);
        crate::storage::STORAGE.record("status database", &r);
        // SQLite opens a file it cannot write read-only and stays so: reconnect on the
        // next use, so that writes work again once the directory is writable.
        if let Err(StoreError::Sql(rusqlite::Error::SqliteFailure(e, _))) = &r
            && e.code == rusqlite::ErrorCode::ReadOnly
            && let Ok(mut c) = self.conn.lock()
        {
            *c = None;
        }
        r
    }

    /// Record a report; returns the updated row. Durable when this returns. Reports
    /// made at the same time share one transaction ([`GroupCommit`]); blocks.
    pub fn report(&self, r: &Report) -> Result<DeviceRow, StoreError> {
        self.reports.submit(r.clone(), |batch| self.write_reports(&batch), || Err(StoreError::Poisoned))
    }

    /// One transaction for a batch of reports, applied in order; then each report's row.
    fn write_reports(&self, batch: &[Report]) -> Vec<Result<DeviceRow, StoreError>> {
        let now = now_rfc3339();
        let written = self.write(|c| {
            let tx = c.transaction()?;
            for r in batch {
                apply_report(&tx, r, &now)?;
            }
            tx.commit()
        });
        match written {
            Ok(()) => batch
                .iter()
                .map(|r| self.device(&r.ip)?.ok_or(StoreError::Sql(rusqlite::Error::QueryReturnedNoRows)))
                .collect(),
            Err(e) => {
                let e = e.to_string();
                batch.iter().map(|_| Err(StoreError::Batch(e.clone()))).collect()
            }
        }
    }

    /// A server-side event (DHCP, TFTP, HTTP) for a device's log. Creates the row as
    /// `unknown` if the device has not reported yet, as Apstra shows leased devices.
    pub fn event(
        &self,
        ip: &str,
        kind: &'static str,
        text: &str,
        name: Option<&str>,
        mac: Option<&str>,
    ) -> Result<(), StoreError> {
        let e = crate::events::Event {
            ip: ip.to_string(),
            kind,
            text: text.to_string(),
            name: name.map(str::to_string),
            mac: mac.map(str::to_string),
        };
        self.events(std::slice::from_ref(&e))
    }

    /// Many server-side events in one transaction (one fsync for the batch).
    ///
    /// Committed with `synchronous=NORMAL` (WAL: on disk in the OS's cache when this
    /// returns, so kill -9 loses none; a power cut may lose the last batches), then the
    /// connection goes back to `FULL` for reports. An fsync per batch of events was
    /// most of the store's cost under HTTP load. The next durable commit (a report)
    /// syncs the WAL and with it every event before it.
    pub fn events(&self, batch: &[crate::events::Event]) -> Result<(), StoreError> {
        let now = now_rfc3339();
        self.write(|c| {
            c.pragma_update(None, "synchronous", "NORMAL")?;
            let r = insert_events(c, batch, &now);
            // Whatever happened, reports must find the connection durable again.
            let back = c.pragma_update(None, "synchronous", "FULL");
            r.and(back)
        })
    }

    /// Device rows per status, for `/metrics`.
    pub fn count_by_status(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.with(|c| {
            let mut st =
                c.prepare_cached("SELECT status, COUNT(*) FROM devices GROUP BY status ORDER BY status")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            rows.map(|r| r.map(|(s, n)| (s, u64::try_from(n).unwrap_or(0)))).collect()
        })
    }

    pub fn devices(&self) -> Result<Vec<DeviceRow>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(&format!("{SELECT} ORDER BY ip"))?;
            let rows = st.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    pub fn device(&self, ip: &str) -> Result<Option<DeviceRow>, StoreError> {
        self.with(|c| c.query_row(&format!("{SELECT} WHERE ip = ?1"), [ip], row).optional())
    }

    pub fn log(&self, ip: &str) -> Result<Vec<Event>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT at, kind, text FROM events WHERE ip = ?1 ORDER BY id")?;
            let rows = st
                .query_map([ip], |r| Ok(Event { at: r.get(0)?, kind: r.get(1)?, text: r.get(2)? }))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// Delete a device and its log (to re-use an IP, as in Apstra). True if it existed.
    pub fn delete(&self, ip: &str) -> Result<bool, StoreError> {
        self.write(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM events WHERE ip = ?1", [ip])?;
            let n = tx.execute("DELETE FROM devices WHERE ip = ?1", [ip])?;
            tx.commit()?;
            Ok(n > 0)
        })
    }
}

const SELECT: &str =
    "SELECT ip, system_id, platform, status, task, last_log, updated_at, name, mac FROM devices";

/// One report's row update and log line, inside the caller's transaction.
fn apply_report(tx: &rusqlite::Transaction, r: &Report, now: &str) -> Result<(), rusqlite::Error> {
    let task = clip(r.task.as_deref().unwrap_or(""));
    let log = clip(r.log.as_deref().unwrap_or(""));
    let status = if task.is_empty() { "in_progress" } else { status_for(task) };
    tx.execute(
        "INSERT INTO devices (ip, system_id, platform, status, task, last_log, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(ip) DO UPDATE SET
           system_id = CASE WHEN ?2 = '' THEN system_id ELSE ?2 END,
           platform = CASE WHEN ?3 = '' THEN platform ELSE ?3 END,
           status = CASE WHEN devices.status = 'completed' AND ?4 = 'in_progress'
                         THEN devices.status ELSE ?4 END,
           task = CASE WHEN devices.status = 'completed' AND ?4 = 'in_progress'
                       THEN devices.task ELSE ?5 END,
           last_log = ?6, updated_at = ?7",
        params![
            r.ip,
            clip(r.system_id.as_deref().unwrap_or("")),
            clip(r.platform.as_deref().unwrap_or("")),
            status,
            task,
            log,
            now
        ],
    )?;
    let text = if log.is_empty() { task.to_string() } else { format!("{task}: {log}") };
    tx.execute(
        "INSERT INTO events (ip, at, kind, text) VALUES (?1, ?2, 'report', ?3)",
        params![r.ip, now, text],
    )?;
    Ok(())
}

fn row(r: &rusqlite::Row) -> Result<DeviceRow, rusqlite::Error> {
    Ok(DeviceRow {
        ip_addr: r.get(0)?,
        system_id: r.get(1)?,
        platform: r.get(2)?,
        status: r.get(3)?,
        task: r.get(4)?,
        last_log: r.get(5)?,
        last_updated_at: r.get(6)?,
        name: r.get(7)?,
        mac: r.get(8)?,
    })
}

/// Bound a field's length at a character boundary.
/// One batch of events in one transaction.
/// Events per multi-row INSERT: one statement writes this many rows. Under HTTP load
/// (one event per GET) a statement per row cost 1.55 µs per event and one per 32 rows
/// 1.05 µs (1,024-event batches, release build; issue 5).
const EVENT_ROWS: usize = 32;

/// `INSERT INTO events ...` with `rows` rows of parameters (ip, at, kind, text).
fn insert_events_sql(rows: usize) -> String {
    let mut q = String::from("INSERT INTO events (ip, at, kind, text) VALUES ");
    for i in 0..rows {
        let p = 4 * i;
        let sep = if i == 0 { "" } else { "," };
        q.push_str(&format!("{sep}(?{}, ?{}, ?{}, ?{})", p + 1, p + 2, p + 3, p + 4));
    }
    q
}

fn insert_events(
    c: &mut Connection,
    batch: &[crate::events::Event],
    now: &str,
) -> Result<(), rusqlite::Error> {
    let tx = c.transaction()?;
    {
        // Cached statements: parsing the SQL again for every event was a third of this
        // function's time under HTTP load (perf, bench/http). Only DHCP makes a device
        // row appear (as Apstra lists leased devices); a fetch from an operator's laptop
        // must not invent a device. (Same transaction, so doing the device rows first
        // leaves the same state as interleaving them.)
        let mut device = tx.prepare_cached(
            "INSERT INTO devices (ip, status, updated_at, name, mac) VALUES (?1, 'unknown', ?2, ?3, ?4)
             ON CONFLICT(ip) DO UPDATE SET updated_at = ?2,
               name = COALESCE(?3, name), mac = COALESCE(?4, mac)",
        )?;
        for e in batch.iter().filter(|e| e.kind == "dhcp") {
            device.execute(params![e.ip, now, e.name, e.mac])?;
        }
        let mut full = tx.prepare_cached(&insert_events_sql(EVENT_ROWS))?;
        let mut chunks = batch.chunks_exact(EVENT_ROWS);
        for chunk in &mut chunks {
            let texts: Vec<&str> = chunk.iter().map(|e| clip(&e.text)).collect();
            let mut p: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(4 * EVENT_ROWS);
            for (e, text) in chunk.iter().zip(&texts) {
                p.extend([&e.ip as &dyn rusqlite::ToSql, &now, &e.kind, text]);
            }
            full.execute(&p[..])?;
        }
        // The rest one row each: one statement in the cache rather than one per length.
        let mut one = tx.prepare_cached(&insert_events_sql(1))?;
        for e in chunks.remainder() {
            one.execute(params![e.ip, now, e.kind, clip(&e.text)])?;
        }
    }
    tx.commit()
}

fn clip(s: &str) -> &str {
    if s.len() <= MAX_FIELD {
        return s;
    }
    let mut end = MAX_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(ip: &str, task: &str) -> Report {
        Report {
            ip: ip.into(),
            system_id: Some("SN1".into()),
            platform: Some("eos".into()),
            task: Some(task.into()),
            log: Some("x".into()),
        }
    }

    /// A batch longer than one multi-row statement, and not a multiple of it: every
    /// event in order, long texts clipped, DHCP events (only) making device rows with
    /// the last name and MAC of the batch.
    #[test]
    fn a_batch_is_written_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let n = 3 * EVENT_ROWS + 5;
        let long = "é".repeat(MAX_FIELD);
        let batch: Vec<crate::events::Event> = (0..n)
            .map(|i| crate::events::Event {
                ip: if i % 2 == 0 { "10.0.0.1" } else { "10.0.0.2" }.into(),
                kind: if i % 10 == 3 { "dhcp" } else { "http" },
                text: if i == 40 { long.clone() } else { format!("event {i}") },
                name: (i % 10 == 3).then(|| format!("leaf{i}")),
                mac: None,
            })
            .collect();
        s.events(&batch).unwrap();
        let mut got = s.log("10.0.0.1").unwrap();
        got.extend(s.log("10.0.0.2").unwrap());
        assert_eq!(got.len(), n);
        let texts: Vec<&str> = got.iter().map(|e| e.text.as_str()).collect();
        let want: Vec<String> = (0..n)
            .filter(|i| i % 2 == 0)
            .chain((0..n).filter(|i| i % 2 == 1))
            .map(|i| if i == 40 { clip(&long).to_string() } else { format!("event {i}") })
            .collect();
        assert_eq!(texts, want, "every event, in order within each device's log");
        assert!(texts.iter().all(|t| t.len() <= MAX_FIELD), "long texts clipped");
        assert_eq!(got.iter().filter(|e| e.kind == "dhcp").count(), (0..n).filter(|i| i % 10 == 3).count());
        // Device rows only from DHCP: 10.0.0.2 had them (odd i ending in 3), with the last name.
        let last = (0..n).rev().find(|i| i % 10 == 3).unwrap();
        assert_eq!(s.device("10.0.0.2").unwrap().unwrap().name, Some(format!("leaf{last}")));
        assert!(s.device("10.0.0.1").unwrap().is_none(), "no DHCP event, no device row");
    }

    #[test]
    fn transitions_follow_apstra() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.event("10.0.0.9", "http", "GET /ztp.json: 200", None, None).unwrap();
        assert!(s.device("10.0.0.9").unwrap().is_none(), "a fetch alone makes no device row");
        s.event("10.0.0.5", "dhcp", "ack 10.0.0.5", Some("leaf1"), Some("02:00:00:00:00:01")).unwrap();
        assert_eq!(s.device("10.0.0.5").unwrap().unwrap().status, "unknown");
        assert_eq!(s.report(&report("10.0.0.5", "Checking version")).unwrap().status, "in_progress");
        assert_eq!(s.report(&report("10.0.0.5", "ZTP Done")).unwrap().status, "in_progress");
        let done = s.report(&report("10.0.0.5", "Device Ready")).unwrap();
        assert_eq!((done.status.as_str(), done.name.as_deref()), ("completed", Some("leaf1")));
        // The script's own "ZTP Done" can arrive after the agent connected: it must not
        // take a completed device back to in_progress.
        let late = s.report(&report("10.0.0.5", "ZTP Done")).unwrap();
        assert_eq!((late.status.as_str(), late.task.as_str()), ("completed", "Device Ready"));
        assert_eq!(s.report(&report("10.0.0.6", "ZTP Failed")).unwrap().status, "failed");
        assert_eq!(s.log("10.0.0.5").unwrap().len(), 5);
        assert!(s.delete("10.0.0.5").unwrap());
        assert!(s.device("10.0.0.5").unwrap().is_none());
        assert!(s.log("10.0.0.5").unwrap().is_empty());
        assert!(!s.delete("10.0.0.5").unwrap());
    }

    /// Reports from many devices at once are each recorded (through shared
    /// transactions), each answered with its own device's row, and survive a reopen.
    #[test]
    fn concurrent_reports_are_each_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(Store::open(dir.path()).unwrap());
        let threads: Vec<_> = (1..=40)
            .map(|i| {
                let s = std::sync::Arc::clone(&s);
                std::thread::spawn(move || {
                    let ip = format!("10.0.1.{i}");
                    let task = if i % 2 == 0 { "Device Ready" } else { "ZTP Failed" };
                    (ip.clone(), task, s.report(&report(&ip, task)).unwrap())
                })
            })
            .collect();
        for t in threads {
            let (ip, task, row) = t.join().unwrap();
            assert_eq!((row.ip_addr.as_str(), row.task.as_str()), (ip.as_str(), task));
        }
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        let counts = s.count_by_status().unwrap();
        assert!(
            counts.contains(&("completed".into(), 20)) && counts.contains(&("failed".into(), 20)),
            "{counts:?}"
        );
        assert_eq!(s.log("10.0.1.7").unwrap().len(), 1);
    }

    /// Events commit without an fsync, but the connection must be back to
    /// `synchronous=FULL` (2) afterwards, or reports would lose their durability.
    #[test]
    fn events_leave_the_connection_durable_for_reports() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let sync = |s: &Store| {
            s.with(|c| c.pragma_query_value(None, "synchronous", |r| r.get::<_, i64>(0))).unwrap()
        };
        assert_eq!(sync(&s), 2);
        s.event("10.0.0.9", "http", "GET /a: 200", None, None).unwrap();
        assert_eq!(sync(&s), 2);
        // A failing batch (the table is gone) restores it too.
        s.with(|c| c.execute_batch("DROP TABLE events")).unwrap();
        assert!(s.event("10.0.0.9", "http", "GET /b: 200", None, None).is_err());
        assert_eq!(sync(&s), 2);
    }

    #[test]
    fn reports_survive_reopen_and_fields_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            let mut r = report("10.0.0.7", "ZTP Done");
            r.log = Some("é".repeat(MAX_FIELD));
            s.report(&r).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let row = s.device("10.0.0.7").unwrap().unwrap();
        assert_eq!(row.task, "ZTP Done");
        assert!(row.last_log.len() <= MAX_FIELD);
    }
}
