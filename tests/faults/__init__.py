"""Fault-injection helpers for tests/test_faults.py: crafted archives, small and read-only filesystems, a local
HTTP server that honours Range and can break a download mid-way. Real files, real mounts, real sockets."""
