"""Reporting age groups as unions of the network's fine age bins.

The network predicts a distribution over fine bins (one per year of age); a
report groups them. A grouping is configuration, so a store can count
``retail6`` and a researcher ``fairface9`` from the same model, and group
probabilities are exact sums of bin probabilities. A group boundary that falls
inside a fine bin cannot be summed exactly and is rejected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from analyzer.errors import ConfigError

#: Lower edges of the fine age bins the shipped network predicts: one bin per
#: year ``[a, a + 1)`` for 0..99 and a last open bin ``[100, inf)``.
FINE_AGE_EDGES: tuple[float, ...] = tuple(float(age) for age in range(101))


@dataclass(frozen=True)
class AgeGroup:
    """One reporting group: ages ``low <= age < high`` in years (``high`` may be inf)."""

    name: str
    low: float
    high: float

    def contains(self, age: float) -> bool:
        """Whether a (fractional) age in years falls in this group."""
        return self.low <= age < self.high


@dataclass(frozen=True)
class AgeGrouping:
    """An ordered partition of ages ``[0, inf)`` into named groups.

    Example:
        >>> grouping = parse_grouping("three", ["0-30", "31-50", "51+"])
        >>> grouping.index_of(42.0)
        1
    """

    name: str
    groups: tuple[AgeGroup, ...]

    def __post_init__(self) -> None:
        if not self.groups:
            raise ConfigError(f"age grouping '{self.name}': needs at least one group")
        if self.groups[0].low != 0:
            raise ConfigError(
                f"age grouping '{self.name}': first group '{self.groups[0].name}' starts at "
                f"{self.groups[0].low:g}; groups must start at age 0"
            )
        for before, after in zip(self.groups, self.groups[1:], strict=False):
            if before.high != after.low:
                raise ConfigError(
                    f"age grouping '{self.name}': '{before.name}' ends at {before.high:g} but "
                    f"'{after.name}' starts at {after.low:g}; groups must be contiguous "
                    "without gaps or overlaps"
                )
        if not math.isinf(self.groups[-1].high):
            raise ConfigError(
                f"age grouping '{self.name}': last group '{self.groups[-1].name}' must be open-ended (like '70+')"
            )
        names = [group.name for group in self.groups]
        if len(set(names)) != len(names):
            raise ConfigError(f"age grouping '{self.name}': group names repeat: {names}")

    @property
    def names(self) -> list[str]:
        """Group names in order."""
        return [group.name for group in self.groups]

    def index_of(self, age: float) -> int:
        """Index of the group that holds ``age`` years."""
        for index, group in enumerate(self.groups):
            if group.contains(age):
                return index
        raise ValueError(f"age {age} is negative")

    def indices_of(self, ages: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`index_of` for an array of ages in years."""
        uppers = np.array([group.high for group in self.groups[:-1]])
        return np.searchsorted(uppers, np.asarray(ages, dtype=float), side="right")

    def bin_matrix(self, bin_edges: Sequence[float]) -> np.ndarray:
        """Matrix ``(bins, groups)`` of 0/1 that sums bin probabilities into groups.

        Raises:
            ConfigError: a group boundary cuts a fine bin of the model.
        """
        edges = [float(edge) for edge in bin_edges]
        for group in self.groups[1:]:
            if group.low not in edges:
                below = max((edge for edge in edges if edge < group.low), default=edges[0])
                above = min((edge for edge in edges if edge > group.low), default=math.inf)
                raise ConfigError(
                    f"age grouping '{self.name}': group '{group.name}' starts at "
                    f"{group.low:g}, inside the model's fine age bin [{below:g}, {above:g}); "
                    "group boundaries must fall on bin edges"
                )
        matrix = np.zeros((len(edges), len(self.groups)), dtype=np.float32)
        for bin_index, edge in enumerate(edges):
            matrix[bin_index, self.index_of(edge)] = 1.0
        return matrix


def _parse_bound(text: str, grouping: str, item: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"age grouping '{grouping}': '{item}' is not an age range like '20-29' or '70+'") from None
    if value < 0:
        raise ConfigError(f"age grouping '{grouping}': '{item}' has a negative age")
    return value


def _parse_group(item: str | Mapping[str, str], grouping: str) -> AgeGroup:
    """Parse ``"20-29"``, ``"70+"`` or ``{name: adult, ages: "25-34"}``.

    A range ``a-b`` is inclusive of whole years, i.e. ``[a, b + 1)``.
    """
    if isinstance(item, Mapping):
        unknown = set(item) - {"name", "ages"}
        if unknown or "ages" not in item:
            raise ConfigError(
                f"age grouping '{grouping}': a group is written '20-29' or "
                f"{{name: adult, ages: '20-29'}}, got {dict(item)!r}"
            )
        name = str(item.get("name", item["ages"]))
        ages = str(item["ages"])
    else:
        name = ages = str(item)
    ages = ages.strip()
    if ages.endswith("+"):
        return AgeGroup(name, _parse_bound(ages[:-1], grouping, ages), math.inf)
    low_text, dash, high_text = ages.partition("-")
    if not dash:
        raise ConfigError(f"age grouping '{grouping}': '{ages}' is not an age range like '20-29' or '70+'")
    low = _parse_bound(low_text, grouping, ages)
    high = _parse_bound(high_text, grouping, ages)
    if high < low:
        raise ConfigError(f"age grouping '{grouping}': '{ages}' ends before it starts")
    return AgeGroup(name, low, high + 1)


def parse_grouping(name: str, items: Sequence[str | Mapping[str, str]]) -> AgeGrouping:
    """Build a grouping from config items; errors name the grouping and item."""
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise ConfigError(f"age grouping '{name}': expected a list of ranges, got {items!r}")
    return AgeGrouping(name, tuple(_parse_group(item, name) for item in items))


BUILTIN_GROUPINGS: dict[str, AgeGrouping] = {
    "fairface9": parse_grouping(
        "fairface9",
        ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"],
    ),
    "retail6": parse_grouping("retail6", ["0-12", "13-19", "20-29", "30-44", "45-59", "60+"]),
    "three": parse_grouping(
        "three",
        [
            {"name": "young", "ages": "0-30"},
            {"name": "middle", "ages": "31-50"},
            {"name": "old", "ages": "51+"},
        ],
    ),
    "ten": parse_grouping(
        "ten",
        [
            {"name": "baby", "ages": "0-1"},
            {"name": "toddler", "ages": "2-3"},
            {"name": "child", "ages": "4-8"},
            {"name": "adolescent", "ages": "9-13"},
            {"name": "teenager", "ages": "14-18"},
            {"name": "young_adult", "ages": "19-24"},
            {"name": "adult", "ages": "25-34"},
            {"name": "mature_adult", "ages": "35-44"},
            {"name": "middle_age", "ages": "45-58"},
            {"name": "senior", "ages": "59+"},
        ],
    ),
}


def builtin_grouping(name: str) -> AgeGrouping:
    """Look up a shipped grouping by name, with the allowed names in the error."""
    try:
        return BUILTIN_GROUPINGS[name]
    except KeyError:
        raise ConfigError(
            f"unknown age grouping '{name}'; shipped: {', '.join(BUILTIN_GROUPINGS)} "
            "(or define one in the config's age_groupings section)"
        ) from None
