//! Routes: paths to method handlers, the way axum and picoserve spell them:
//! `Router::new().route("/health", get(health)).route("/echo", post(echo))`.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;

use crate::{Request, Response, Status};

type BoxFuture = Pin<Box<dyn Future<Output = Response>>>;
type Handler = Box<dyn Fn(Request) -> BoxFuture>;

fn boxed<H, F>(h: H) -> Handler
where
    H: Fn(Request) -> F + 'static,
    F: Future<Output = Response> + 'static,
{
    Box::new(move |r| Box::pin(h(r)))
}

/// The handlers of one path, by method.
#[derive(Default)]
pub struct MethodRouter {
    by_method: Vec<(&'static str, Handler)>,
    any: Option<Handler>,
}

impl core::fmt::Debug for MethodRouter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let methods: Vec<&str> = self.by_method.iter().map(|(m, _)| *m).collect();
        f.debug_struct("MethodRouter")
            .field("methods", &methods)
            .field("any", &self.any.is_some())
            .finish()
    }
}

macro_rules! method {
    ($free:ident, $method:ident, $name:literal) => {
        #[doc = concat!("A path's handler for `", $name, "` requests.")]
        pub fn $free<H, F>(h: H) -> MethodRouter
        where
            H: Fn(Request) -> F + 'static,
            F: Future<Output = Response> + 'static,
        {
            MethodRouter::default().on($name, h)
        }

        impl MethodRouter {
            #[doc = concat!("Adds a handler for `", $name, "` requests.")]
            pub fn $method<H, F>(self, h: H) -> MethodRouter
            where
                H: Fn(Request) -> F + 'static,
                F: Future<Output = Response> + 'static,
            {
                self.on($name, h)
            }
        }
    };
}

method!(get, get, "GET");
method!(post, post, "POST");
method!(put, put, "PUT");
method!(delete, delete, "DELETE");

/// A path's handler for every method (it answers 405 itself where it should).
pub fn any<H, F>(h: H) -> MethodRouter
where
    H: Fn(Request) -> F + 'static,
    F: Future<Output = Response> + 'static,
{
    MethodRouter {
        by_method: Vec::new(),
        any: Some(boxed(h)),
    }
}

impl MethodRouter {
    /// Adds a handler for requests with `method`.
    pub fn on<H, F>(mut self, method: &'static str, h: H) -> MethodRouter
    where
        H: Fn(Request) -> F + 'static,
        F: Future<Output = Response> + 'static,
    {
        self.by_method.push((method, boxed(h)));
        self
    }

    fn handler(&self, method: &str) -> Option<&Handler> {
        self.by_method
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, h)| h)
            .or(self.any.as_ref())
    }
}

/// Paths and their handlers. A path ending in `/*` matches every path under it (`/kv/*`
/// matches `/kv/` and `/kv/a/b`); exact paths win, then the longest such prefix. An unknown
/// path gets 404, a known path with another method 405.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<(String, bool, MethodRouter)>,
}

impl Router {
    /// No routes (every request gets 404).
    pub fn new() -> Self {
        Router::default()
    }

    /// Adds the handlers of `path` (`/a/*`: every path under `/a/`).
    pub fn route(mut self, path: &str, handlers: MethodRouter) -> Self {
        match path.strip_suffix('*') {
            Some(prefix) => self.routes.push((prefix.into(), true, handlers)),
            None => self.routes.push((path.into(), false, handlers)),
        }
        self
    }

    fn find(&self, path: &str) -> Option<&MethodRouter> {
        if let Some((_, _, m)) = self.routes.iter().find(|(p, pre, _)| !pre && p == path) {
            return Some(m);
        }
        self.routes
            .iter()
            .filter(|(p, pre, _)| *pre && path.starts_with(p.as_str()))
            .max_by_key(|(p, _, _)| p.len())
            .map(|(_, _, m)| m)
    }

    /// Answers `req` with its route's handler, or 404 / 405.
    pub async fn handle(&self, req: Request) -> Response {
        let Some(m) = self.find(req.path()) else {
            return Response::text(Status::NOT_FOUND, "not found\n");
        };
        match m.handler(req.method()) {
            Some(h) => h(req).await,
            None => Response::text(Status::METHOD_NOT_ALLOWED, "method not allowed\n"),
        }
    }
}
