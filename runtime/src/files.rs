//! HTTP responses for files of the served tree and images: GET/HEAD, ETag, Range.
//!
//! The router calls [`respond`] for every path that is not its own (`/api`, `/healthz`),
//! with the generation it took for this request, so a reload never changes the bytes of
//! a response in flight. Tree files the generation holds in memory are answered with a
//! zero-copy slice of its `Bytes`; tree files it keeps on disk (through the descriptor
//! it checked them with) and images are streamed in large chunks ([`DiskReader`]), so a
//! 1 GB image costs two chunks of memory, not 1 GB.

use std::fs::File;
use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper::body::{Frame, SizeHint};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::generation::{Data, Generation, ServedFile, ServedRef, TreeFile};
use crate::paths;

/// Every response body this module (and the router) produces.
pub type Body = http_body_util::combinators::BoxBody<Bytes, io::Error>;

/// Chunk size for HTTP image streaming. Large enough that the per-chunk hop to the
/// blocking pool is noise next to the copy (nginx with sendfile is the yardstick, see
/// issue 5); small enough that many parallel downloads stay cheap (two chunks each).
const HTTP_CHUNK: usize = 256 * 1024;

/// A request path, decoded and cleaned once: the router checks access with the tree key
/// and [`respond`] serves it (or refuses it) without cleaning it again.
pub struct Target<'a> {
    /// As received (still percent-encoded; a query, if any, cut off): for the log.
    pub raw: &'a str,
    /// The tree key, or why the path was refused.
    pub clean: Result<String, paths::BadPath>,
}

impl<'a> Target<'a> {
    pub fn of(raw_path: &'a str) -> Target<'a> {
        let raw = raw_path.split_once('?').map_or(raw_path, |(p, _)| p);
        Target { raw, clean: paths::clean_http(raw) }
    }
}

/// Answer one request for a file of `generation` to `peer`.
///
/// Refused paths are logged with `tracing::warn!`, with the peer address.
///
/// A `Range` with more than one range is answered 200 with the whole file (allowed by
/// RFC 9110 §14.2): installers resume with a single range, and multipart/byteranges
/// would only add code that no ZTP client exercises.
///
/// The headers are built from static text and the generation's own strings: for a small
/// file held in memory a 200 costs five small allocations here (the header table's two,
/// the ETag, the length, the boxed body), no copy of the body, and no tracing span (with
/// the JSON log format, a span's fields are formatted when it is created: 6 % of the
/// runtime's CPU per request under wrk, issue 5).
pub async fn respond(
    generation: &Generation,
    peer: SocketAddr,
    method: &Method,
    target: &Target<'_>,
    headers: &HeaderMap,
) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let clean = match &target.clean {
        Ok(c) => c.as_str(),
        Err(e) => {
            tracing::warn!(%peer, path = %truncate(target.raw), reason = %e, generation = %generation.id, "http: refused path");
            return text(StatusCode::BAD_REQUEST, "bad path\n");
        }
    };
    let Some(served) = generation.lookup(clean) else {
        tracing::debug!(%peer, path = %clean, generation = %generation.id, "http: not found");
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    if let ServedRef::Tree(f) = served
        && !f.vouched()
    {
        let same = match Handle::try_current() {
            Ok(rt) => still_matches(&rt, f).await,
            Err(_) => false,
        };
        if !same {
            tracing::warn!(%peer, path = %clean, generation = %generation.id, "http: file changed on disk since its check (no longer the sha256 in runtime.json): not served");
            return text(StatusCode::SERVICE_UNAVAILABLE, "file changed on the server, retry later\n");
        }
    }
    let (size, sha) = match served {
        ServedRef::Tree(f) => (f.len(), Some(f.sha256.as_str())),
        ServedRef::Image(i) => (i.size, i.sha256.as_deref()),
    };
    let etag = sha.and_then(etag_of);
    let etag_text = etag.as_ref().and_then(|t| t.to_str().ok());
    // Both conditionals read the tag before it moves into the headers (a clone of a
    // `HeaderValue` made from a `String` allocates).
    let not_modified = etag_text.is_some_and(|t| none_match(headers, t));
    // Range is defined for GET only (RFC 9110 §14.2); a HEAD gets the full headers.
    let ranged = method == Method::GET && if_range_ok(headers, etag_text);

    let mut head = HeaderMap::new();
    head.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(clean)));
    head.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(t) = etag {
        head.insert(header::ETAG, t);
    }
    if not_modified {
        return with(StatusCode::NOT_MODIFIED, head, empty());
    }

    let range = if ranged {
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map_or(Want::Full, |v| parse_range(v, size))
    } else {
        Want::Full
    };
    let (status, start, end) = match range {
        Want::Full => (StatusCode::OK, 0, size),
        Want::Part(a, b) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{}/{size}", b - 1)) {
                head.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, a, b)
        }
        Want::Unsatisfiable => {
            let mut r = text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    head.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if method == Method::HEAD {
        return with(status, head, empty());
    }
    let body = match served {
        // Both bounds are within the file: `parse_range` clamps them to `size`.
        ServedRef::Tree(f) => match f.data() {
            Data::Memory(m) => {
                Full::new(m.slice(start as usize..end as usize)).map_err(|never| match never {}).boxed()
            }
            // A file the generation keeps on disk (a device's own script): its open
            // descriptor, read like an image.
            Data::Disk(file, _) => match Handle::try_current() {
                Ok(rt) => DiskReader::new(Arc::clone(file), start, end, HTTP_CHUNK, rt).boxed(),
                Err(_) => return internal_error(),
            },
        },
        ServedRef::Image(i) => {
            let Ok(rt) = Handle::try_current() else { return internal_error() };
            match open_image(&rt, i.path.clone(), i.size).await {
                Ok(file) => DiskReader::new(Arc::new(file), start, end, HTTP_CHUNK, rt).boxed(),
                Err(e) => {
                    tracing::warn!(%peer, path = %clean, file = %i.path.display(), error = %e, "http: image not servable");
                    return text(StatusCode::SERVICE_UNAVAILABLE, "file not available, retry later\n");
                }
            }
        }
    };
    tracing::debug!(%peer, path = %clean, status = status.as_u16(), bytes = end - start, generation = %generation.id, "http: serving");
    with(status, head, body)
}

/// [`TreeFile::still_matches`] on the blocking pool: a file kept on disk that its
/// timestamps no longer vouch for is hashed again before it is served, so the bytes sent
/// are always those its ETag (the sha256) names. Any failure counts as changed.
pub(crate) async fn still_matches(rt: &Handle, f: &TreeFile) -> bool {
    let f = f.clone();
    rt.spawn_blocking(move || f.still_matches()).await.is_ok_and(|r| r.is_ok_and(|same| same))
}

/// The strong validator of a file: its sha256 in quotes, built in one allocation.
fn etag_of(sha: &str) -> Option<HeaderValue> {
    let mut t = String::with_capacity(sha.len() + 2);
    t.push('"');
    t.push_str(sha);
    t.push('"');
    HeaderValue::from_maybe_shared(Bytes::from(t)).ok()
}

fn with(status: StatusCode, head: HeaderMap, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = head;
    r
}

/// hyper runs inside tokio, so this is only reached if `respond` is misused.
fn internal_error() -> Response<Body> {
    text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
}

/// Open an image on the blocking pool and check that it is still the size the
/// generation recorded: a file replaced or truncated since the load would otherwise be
/// served with a wrong Content-Length (or tsize) and a stale ETag.
pub(crate) async fn open_image(rt: &Handle, path: std::path::PathBuf, want: u64) -> io::Result<ServedFile> {
    let opened = rt.spawn_blocking(move || open_checked(&path, want));
    opened.await.map_err(io::Error::other)?
}

/// [`open_image`] for callers already on a thread that may block (TFTP transfers).
pub(crate) fn open_checked(path: &std::path::Path, want: u64) -> io::Result<ServedFile> {
    let f = File::open(path)?;
    let len = f.metadata()?.len();
    if len != want {
        return Err(io::Error::other(format!("size on disk is {len}, the generation recorded {want}")));
    }
    Ok(ServedFile::new(f))
}

fn text(status: StatusCode, msg: &'static str) -> Response<Body> {
    let mut r =
        Response::new(Full::new(Bytes::from_static(msg.as_bytes())).map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(msg.len()));
    r
}

fn empty() -> Body {
    Full::new(Bytes::new()).map_err(|never| match never {}).boxed()
}

/// Keep log lines bounded when someone sends a very long path.
fn truncate(p: &str) -> &str {
    match p.char_indices().nth(200) {
        Some((i, _)) => &p[..i],
        None => p,
    }
}

/// By extension: the scripts devices fetch are shell or Python, configs JSON.
pub fn content_type(path: &str) -> &'static str {
    let Some((_, ext)) = path.rsplit_once('.') else { return "application/octet-stream" };
    let is = |e: &str| ext.eq_ignore_ascii_case(e);
    if is("sh") || is("py") {
        "text/plain"
    } else if is("json") {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

/// `If-None-Match` with our tag (weak comparison, RFC 9110 §13.1.2) or `*`.
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
        })
}

/// `If-Range` must name our current tag exactly (strong comparison); a date, or a tag
/// from an older generation, means "send the whole file", so a resumed download never
/// splices bytes of two different files.
fn if_range_ok(headers: &HeaderMap, etag: Option<&str>) -> bool {
    match headers.get(header::IF_RANGE) {
        None => true,
        Some(v) => etag.is_some_and(|t| v.to_str().is_ok_and(|v| v.trim() == t)),
    }
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// No usable range: send everything with 200.
    Full,
    /// Bytes `start..end` (end exclusive), both within the file.
    Part(u64, u64),
    Unsatisfiable,
}

/// Parse one `Range` header value. Anything malformed is ignored (RFC 9110 §14.2 lets a
/// server ignore a Range it does not understand), as is a list of more than one range.
pub fn parse_range(value: &str, size: u64) -> Want {
    let Some((unit, set)) = value.trim().split_once('=') else { return Want::Full };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Want::Full;
    }
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else { return Want::Full };
    let Some((a, b)) = spec.split_once('-') else { return Want::Full };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (a.trim(), b.trim()) {
        ("", n) => match num(n) {
            None => Want::Full,
            Some(0) => Want::Unsatisfiable,
            Some(_) if size == 0 => Want::Unsatisfiable,
            Some(n) => Want::Part(size.saturating_sub(n), size),
        },
        (a, "") => match num(a) {
            None => Want::Full,
            Some(a) if a >= size => Want::Unsatisfiable,
            Some(a) => Want::Part(a, size),
        },
        (a, b) => match (num(a), num(b)) {
            (Some(a), Some(b)) if a <= b => {
                if a >= size {
                    Want::Unsatisfiable
                } else {
                    Want::Part(a, b.saturating_add(1).min(size))
                }
            }
            _ => Want::Full,
        },
    }
}

/// Reads bytes `pos..end` of a file in chunks. A chunk already in the page cache is read
/// right on the polling thread (`preadv2` with `RWF_NOWAIT`, which never waits for the
/// disk): no hop to another thread, and the bytes are still in this CPU's cache when
/// hyper copies them into the socket (with a read on the blocking pool that copy ran
/// from another core's cache and was the largest cost of a download in perf). A chunk
/// that is not cached is read on the blocking pool, from then on one chunk ahead of the
/// consumer so disk reads overlap with socket writes. Used as the HTTP body of an image
/// or of a tree file kept on disk.
/// Each blocking job is one short positioned read: a slow client never pins a thread.
pub(crate) struct DiskReader {
    file: Arc<ServedFile>,
    pos: u64,
    end: u64,
    chunk: usize,
    pending: Option<JoinHandle<io::Result<Bytes>>>,
    remaining: u64,
    /// A read found bytes not in the page cache: stay on the blocking pool.
    cold: bool,
    rt: Handle,
}

impl DiskReader {
    pub(crate) fn new(file: Arc<ServedFile>, start: u64, end: u64, chunk: usize, rt: Handle) -> DiskReader {
        DiskReader { file, pos: start, end, chunk, pending: None, remaining: end - start, cold: false, rt }
    }

    fn start_next(&mut self) {
        if self.pending.is_some() || self.pos >= self.end {
            return;
        }
        let n = (self.end - self.pos).min(self.chunk as u64) as usize;
        let (file, at) = (Arc::clone(&self.file), self.pos);
        self.pos += n as u64;
        self.pending = Some(self.rt.spawn_blocking(move || read_chunk(&file, at, n)));
    }

    /// The next chunk from the page cache without blocking, if it is all there.
    fn read_cached(&mut self) -> Option<Bytes> {
        let n = (self.end - self.pos).min(self.chunk as u64) as usize;
        let mut buf = vec![0u8; n];
        let flags = rustix::io::ReadWriteFlags::NOWAIT;
        match rustix::io::preadv2(&*self.file, &mut [io::IoSliceMut::new(&mut buf)], self.pos, flags) {
            Ok(k) if k > 0 => {
                // A short read is what is cached so far; the rest comes next time.
                buf.truncate(k);
                self.pos += k as u64;
                self.remaining -= k as u64;
                Some(Bytes::from(buf))
            }
            // EAGAIN (not cached), EOPNOTSUPP (a filesystem without it), or 0 (the
            // file shrank): the blocking path reads it, or reports the error.
            _ => {
                self.cold = true;
                None
            }
        }
    }

    /// The next chunk, `None` at the end.
    pub(crate) fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if !self.cold
            && self.pending.is_none()
            && self.pos < self.end
            && let Some(b) = self.read_cached()
        {
            return Poll::Ready(Some(Ok(b)));
        }
        self.start_next();
        let Some(job) = self.pending.as_mut() else { return Poll::Ready(None) };
        let got = ready!(Pin::new(job).poll(cx));
        self.pending = None;
        match got.map_err(io::Error::other).and_then(|r| r) {
            Ok(b) => {
                self.remaining -= b.len() as u64;
                self.start_next();
                Poll::Ready(Some(Ok(b)))
            }
            Err(e) => {
                // Stop here: a body that errors mid-way is aborted by hyper, which is
                // what the client must see rather than a short file.
                self.pos = self.end;
                self.remaining = 0;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

fn read_chunk(file: &File, at: u64, n: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being served"));
            }
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Bytes::from(buf))
}

impl hyper::body::Body for DiskReader {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.get_mut().poll_chunk(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.pending.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let cases = [
            ("bytes=0-9", 100, Want::Part(0, 10)),
            ("bytes=90-", 100, Want::Part(90, 100)),
            ("bytes=-10", 100, Want::Part(90, 100)),
            ("bytes=-1000", 100, Want::Part(0, 100)),
            ("bytes=50-1000", 100, Want::Part(50, 100)),
            ("BYTES = 5-5", 100, Want::Part(5, 6)),
            ("bytes=100-", 100, Want::Unsatisfiable),
            ("bytes=100-200", 100, Want::Unsatisfiable),
            ("bytes=-0", 100, Want::Unsatisfiable),
            ("bytes=0-", 0, Want::Unsatisfiable),
            ("bytes=-5", 0, Want::Unsatisfiable),
            ("bytes=0-1,5-6", 100, Want::Full),
            ("bytes=9-3", 100, Want::Full),
            ("bytes=a-b", 100, Want::Full),
            ("bytes=+1-2", 100, Want::Full),
            ("items=0-1", 100, Want::Full),
            ("bytes=", 100, Want::Full),
            ("bytes=99999999999999999999999-", 100, Want::Full),
        ];
        for (v, size, want) in cases {
            assert_eq!(parse_range(v, size), want, "{v:?} of {size}");
        }
    }

    #[test]
    fn types() {
        assert_eq!(content_type("devices/leaf1.sh"), "text/plain");
        assert_eq!(content_type("custom/x.PY"), "text/plain");
        assert_eq!(content_type("ztp.json"), "application/json");
        assert_eq!(content_type("images/a.bin"), "application/octet-stream");
        assert_eq!(content_type("SHA256SUMS"), "application/octet-stream");
    }

    #[test]
    fn targets_are_cleaned_once() {
        let t = Target::of("/devices//./leaf1.sh?x=1");
        assert_eq!((t.raw, t.clean.as_deref()), ("/devices//./leaf1.sh", Ok("devices/leaf1.sh")));
        let t = Target::of("/%2e%2e/etc/passwd?a=/..");
        assert_eq!((t.raw, t.clean), ("/%2e%2e/etc/passwd", Err(paths::BadPath::Parent)));
        assert_eq!(Target::of("/ztp.json").clean.as_deref(), Ok("ztp.json"));
    }

    #[test]
    fn etags_are_quoted() {
        assert_eq!(etag_of("ab12").unwrap(), "\"ab12\"");
        assert!(etag_of("bad\nvalue").is_none(), "never a header that would split the response");
    }

    #[test]
    fn conditionals() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"x\", W/\"abc\""));
        assert!(none_match(&h, "\"abc\""));
        assert!(!none_match(&h, "\"abd\""));
        assert!(if_range_ok(&h, None));
        h.insert(header::IF_RANGE, HeaderValue::from_static("\"abc\""));
        assert!(if_range_ok(&h, Some("\"abc\"")));
        assert!(!if_range_ok(&h, Some("\"abd\"")));
        assert!(!if_range_ok(&h, None));
    }
}
