//! JUnit XML: one testcase per gate.
