//! Tests of hunt.
