"""Tests of gazette_trio.runtime: config, spec files, operator CLI, observability."""
