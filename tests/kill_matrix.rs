//! Tests of kill_matrix.
