//! The HTTP/1.1 server Xenia apps share: an app is routes, handlers and [`Limits`].
//!
//! ```ignore
//! let app = Router::new()
//!     .route("/health", get(|_| async { Response::json(Status::OK, "{\"status\":\"ok\"}\n") }))
//!     .route("/echo", post(|req: Request| async move { Response::bytes(Status::OK, req.into_body()) }));
//! let server: &'static Server = Box::leak(Box::new(Server::new(app, Limits::default())));
//! server.run(server.listen(80, ListenConfig::default())?).await
//! ```
//!
//! [`Server::serve`] runs one connection over any `embedded_io_async` stream and any
//! [`Clock`], so the same loop runs over `xenia::net::TcpStream` in a guest and over
//! in-memory streams on the host. Against hostile clients: the head must arrive whole within
//! [`Limits::head_timeout`] of its first byte and a body at [`Limits::body_rate`] or better
//! (else 408); the head's end is found incrementally (each byte looked at once) and parsed
//! once; body memory grows with the bytes received, never with `Content-Length`, and all
//! bodies share [`Limits::max_body_total`]. Status codes: 400 malformed, 404 unknown path,
//! 405 wrong method, 408 too slow, 413 body too large, 431 head too large, 501 chunked
//! bodies, 503 body budget exhausted.
#![no_std]

extern crate alloc;

pub mod clock;
pub mod head;
pub mod input;
pub mod limits;
pub mod request;
pub mod response;
pub mod router;
pub mod server;

pub use clock::Clock;
#[cfg(feature = "xenia")]
pub use clock::XeniaClock;
pub use limits::{Limits, MinRate};
pub use request::Request;
pub use response::{Json, Response, Status};
pub use router::{any, delete, get, post, put, MethodRouter, Router};
pub use server::{End, Server, ServerStats, EVICT_MIN_STALL};
