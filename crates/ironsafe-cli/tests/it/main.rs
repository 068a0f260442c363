//! Tests of the `ironsafe` command, run as a process: one module per
//! subcommand, output checked against snapshots in `snapshots/`.

mod common;
mod convert;
mod corpus;
mod diff;
mod inspect;
mod merge;
mod shard;
mod usage;
mod verify;
