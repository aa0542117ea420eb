"""Test harness: real services (redis-server, moto server) started as child processes."""
