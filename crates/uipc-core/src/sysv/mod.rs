//! The System V mechanisms, each plugged into the generic registry.

pub mod msg;
pub mod msg_page;
pub mod sem;
pub mod shm;
