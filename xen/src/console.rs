//! console (in progress).
