"""China's calendar: the time zone every business day of Zhucun is counted in.

A check-in at 2025-01-31T23:30Z happened on 2025-02-01; months, quarters, terms, due dates
and the day a decision takes effect are all days of this calendar. Pure: deciders import it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Final
from zoneinfo import ZoneInfo

SHANGHAI: Final = ZoneInfo("Asia/Shanghai")


def today_in_china() -> date:
    """Today in China (the calendar every period and due date is counted in)."""
    return datetime.now(SHANGHAI).date()


__all__ = ["SHANGHAI", "today_in_china"]
