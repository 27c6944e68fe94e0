//! `apr-qa hunt`: generated data against the reference paths (DESIGN §3.5).
