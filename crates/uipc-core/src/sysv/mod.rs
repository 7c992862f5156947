//! The System V mechanisms, each plugged into the generic registry.

pub mod shm;
