//! grant (in progress).
