//! The operator's web page at `/`: devices (status, latest event, live download
//! progress, log, delete) and services (generation, last refused reload), updated live
//! through the event stream at `GET /api/events`. Plain HTML, CSS and JavaScript built
//! into the binary: no build step, no asset from outside (the management network has
//! no internet).

pub mod live;
mod page;

use std::sync::Arc;

use hyper::{Method, Response};

use crate::files::Body;
use crate::http::Ctx;

/// The page's own routes, or none for every other path.
pub fn route(ctx: &Arc<Ctx>, method: &Method, path: &str) -> Option<Response<Body>> {
    let read = method == Method::GET || method == Method::HEAD;
    match path {
        "/" | "/index.html" if read => Some(page::response(method == Method::HEAD)),
        "/api/events" if method == Method::GET => Some(live::stream(ctx)),
        _ => None,
    }
}
