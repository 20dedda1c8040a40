"""Zhucun attendance (管): presence evidence, leave, spot checks, diaries, visits, month close."""
