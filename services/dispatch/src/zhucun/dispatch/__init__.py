"""Zhucun dispatch (派): villages, cadres, teams, assignments, rounds, handovers, recalls."""
