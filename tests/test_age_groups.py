import math

import numpy as np
import pytest

from analyzer.core.age_groups import BUILTIN_GROUPINGS, FINE_AGE_EDGES, builtin_grouping, parse_grouping
from analyzer.errors import ConfigError


@pytest.mark.parametrize("name", list(BUILTIN_GROUPINGS))
def test_builtin_groupings_sum_fine_bins(name: str) -> None:
    grouping = BUILTIN_GROUPINGS[name]
    matrix = grouping.bin_matrix(FINE_AGE_EDGES)
    assert matrix.shape == (len(FINE_AGE_EDGES), len(grouping.groups))
    assert np.all(matrix.sum(axis=1) == 1)  # each bin in exactly one group


@pytest.mark.parametrize(
    ("name", "age", "expected"),
    [
        ("fairface9", 2, "0-2"),
        ("fairface9", 3, "3-9"),
        ("fairface9", 69, "60-69"),
        ("fairface9", 70, "70+"),
        ("retail6", 12, "0-12"),
        ("retail6", 44, "30-44"),
        ("three", 30, "young"),
        ("three", 31, "middle"),
        ("three", 51, "old"),
        ("ten", 1, "baby"),
        ("ten", 58, "middle_age"),
        ("ten", 59, "senior"),
    ],
)
def test_ages_fall_in_the_right_group(name: str, age: int, expected: str) -> None:
    grouping = BUILTIN_GROUPINGS[name]
    assert grouping.names[grouping.index_of(age)] == expected
    assert grouping.names[int(grouping.indices_of(np.array([age]))[0])] == expected


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["0-9", "12-19", "20+"], "ends at 10 but '12-19' starts at 12"),
        (["0-9", "5-19", "20+"], "ends at 10 but '5-19' starts at 5"),
        (["1-9", "10+"], "starts at 1"),
        (["0-9", "10-19"], "must be open-ended"),
        (["0-9", "ten+"], "not an age range"),
        (["0-9", "9-3", "10+"], "ends before it starts"),
    ],
)
def test_bad_groupings_are_config_errors(items: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_grouping("custom", items)


def test_group_that_cuts_a_fine_bin_is_rejected() -> None:
    cutting = parse_grouping("cutting", [{"name": "kids", "ages": "0-11.5"}, {"name": "rest", "ages": "12.5+"}])
    with pytest.raises(ConfigError, match="inside the model's fine age bin \\[12, 13\\)"):
        cutting.bin_matrix(FINE_AGE_EDGES)
    coarse_edges = [0, 5, 10, 20, 40, 60]
    with pytest.raises(ConfigError, match="starts at 13, inside the model's fine age bin \\[10, 20\\)"):
        BUILTIN_GROUPINGS["retail6"].bin_matrix(coarse_edges)


def test_unknown_builtin_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="fairface9, retail6, three, ten"):
        builtin_grouping("decades")
    assert math.isinf(BUILTIN_GROUPINGS["ten"].groups[-1].high)
