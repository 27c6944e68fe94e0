//! Reports built from `evidence.json` alone (DESIGN §3.4): any run, today's or last month's,
//! a shard from another machine, can be reported, compared and triaged later.
//! This module reads only `evidence` (and the gate catalogue's static text).

pub mod html;
pub mod junit;
pub mod markdown;
pub mod merge;
pub mod ticket;
pub mod triage;
