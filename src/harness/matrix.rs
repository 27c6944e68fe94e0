//! The fault kill matrix: a playbook run clean and once per fault.
