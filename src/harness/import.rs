//! Importing the incumbent tool's playbooks.
