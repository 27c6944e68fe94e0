//! Markdown bug tickets, one per falsified gate family, in the seed tickets' style.
