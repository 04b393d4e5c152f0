//! Workspace-level integration tests live in `tests/tests/`; see docs/TESTING.md.
