"""The replicas assessment keeps of what other services publish (their contracts only)."""
