//! Xenia runtime (in progress).
#![no_std]
