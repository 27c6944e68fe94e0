//! Regression triage and trends across several evidence files of one playbook and model.
