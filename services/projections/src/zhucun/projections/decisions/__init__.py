"""Recall decisions and promotion pools (用): rules, projection, lifecycle, HTTP edge."""
