//! Merging the evidence of shards into one evidence file.
