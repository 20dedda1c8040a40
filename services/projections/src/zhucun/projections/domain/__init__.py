"""The read side's pure domain: the recall and pool rules (rules.py), the life of a recall
decision (lifecycle.py), the read side's policy section (policy.py) and its refusals
(errors.py). No I/O: the read models (audit.py, decisions/) and the use cases
(application.py) call it."""
