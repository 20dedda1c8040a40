"""The geofence check: a location is evidence, compared with the village's circle and then
discarded. Only inside/outside and the distance rounded to 10 m are kept
(docs/domain.md#attendance-geofence)."""

from __future__ import annotations

import math

from zhucun.attendance.domain.commands import Coordinates, Geofence
from zhucun.contracts.attendance.events import LocationEvidence

#: Mean earth radius (IUGG), in metres.
EARTH_RADIUS_M = 6_371_008.8
#: Kept distances are rounded to this many metres.
DISTANCE_ROUNDING_M = 10


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two points given in degrees (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(lon2 - lon1) / 2
    h = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def round_distance(distance: float) -> int:
    """``distance`` rounded to the nearest 10 m, halves up (1005 m -> 1010 m)."""
    step = DISTANCE_ROUNDING_M
    return math.floor(distance / step + 0.5) * step


def location_evidence(distance: float, radius_m: int) -> LocationEvidence:
    """What is kept of a location ``distance`` metres from a village centre with a geofence
    of ``radius_m``: inside when the unrounded distance is at most the radius (a point exactly
    on the edge is inside), and the distance rounded to 10 m."""
    return LocationEvidence(
        inside_geofence=distance <= radius_m, distance_m=round_distance(distance)
    )


def evaluate_location(location: Coordinates, geofence: Geofence) -> LocationEvidence:
    """Compare ``location`` with the village's ``geofence``; the coordinates go no further."""
    distance = distance_m(
        geofence.latitude, geofence.longitude, location.latitude, location.longitude
    )
    return location_evidence(distance, geofence.radius_m)
