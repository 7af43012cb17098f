"""The demo college: deterministic generator, real sources (SQLite, GBK CSV, HTTP API)."""
