//! sched (in progress).
