//! Tests of fleet.
