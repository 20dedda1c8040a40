"""Development tooling of Zhucun (never shipped): see ``commands``."""
