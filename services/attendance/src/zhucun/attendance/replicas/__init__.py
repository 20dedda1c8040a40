"""The replicas attendance keeps of what other services publish (their contracts only)."""
