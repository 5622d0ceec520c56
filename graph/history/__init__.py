"""The history: every conversation and LAM message kept in SQL (docs/history.md)."""
