"""Tests of pure functions: no database, no files, no servers."""
