"""Tests of the stores: SQLStore, JSONFileStore, SQLiteStore."""
