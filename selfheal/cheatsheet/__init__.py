"""Dynamic Cheatsheet: entry model, one-file-per-entry YAML store, retrieval."""
