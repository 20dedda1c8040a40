"""Zhucun assessment (考): inspections, quarterly, annual and term grades, villager
evaluation, red and blue lists.
"""
