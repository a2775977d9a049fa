//! Test support for scenario tests of the device core.
#![allow(dead_code)]

pub mod node;
pub mod sim;
