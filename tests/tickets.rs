//! Tests of tickets.
