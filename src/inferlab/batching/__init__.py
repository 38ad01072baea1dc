"""Scheduling requests onto runtime instances: direct calls now, dynamic batching on top."""
