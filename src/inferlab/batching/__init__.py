"""Scheduling requests onto model instances: bounded queue, batch-forming policy, dynamic batcher, instance pool."""
