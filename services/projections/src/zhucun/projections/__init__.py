"""Zhucun projections (用): recall decisions, promotion pools, audit trail, replay."""
