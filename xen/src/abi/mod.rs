//! ABI structures shared with Xen and the backends, checked against the C headers.
