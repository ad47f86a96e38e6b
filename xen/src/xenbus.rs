//! xenbus (in progress).
