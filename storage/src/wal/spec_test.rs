//! Checks that the constants in code match docs/STORAGE-WAL.md.
