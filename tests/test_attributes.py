import numpy as np
import pytest

from analyzer.core.age_groups import FINE_AGE_EDGES, parse_grouping
from analyzer.core.visits import LoggedSample
from analyzer.pipeline.attributes import AttributeVoter


def voter(confident_at: float = 0.9) -> AttributeVoter:
    grouping = parse_grouping(
        "three",
        [{"name": "young", "ages": "0-30"}, {"name": "middle", "ages": "31-50"}, {"name": "old", "ages": "51+"}],
    )
    return AttributeVoter(grouping, FINE_AGE_EDGES, np.asarray(FINE_AGE_EDGES), ("female", "male"), confident_at)


def age_at(age: int) -> np.ndarray:
    probs = np.zeros(len(FINE_AGE_EDGES))
    probs[age] = 1.0
    return probs


def logged(age: int, gender_probs: np.ndarray, quality: float) -> LoggedSample:
    """A sample as a run without the face check logs it."""
    return LoggedSample(age_at(age), gender_probs, quality, None)


def test_quality_weighted_vote() -> None:
    votes = voter()
    key = ("door", 1)
    votes.add(key, age_at(25), np.array([0.9, 0.1]), quality=0.2)  # poor crop says young female
    votes.add(key, age_at(45), np.array([0.2, 0.8]), quality=0.9)  # good crops say middle-aged male
    votes.add(key, age_at(40), np.array([0.3, 0.7]), quality=0.8)
    result = votes.finish([key])
    assert (result.age_group, result.gender, result.samples) == ("middle", "male", 3)
    assert result.age_group_p["middle"] == pytest.approx(1.7 / 1.9, abs=1e-3)
    assert result.age_years == pytest.approx((25 * 0.2 + 45 * 0.9 + 40 * 0.8) / 1.9, abs=0.1)
    assert votes.finish([key]).samples == 0  # forgotten after finish


def test_confidence_needs_two_sure_samples() -> None:
    votes = voter(confident_at=0.9)
    key = ("door", 2)
    votes.add(key, age_at(60), np.array([0.02, 0.98]), 1.0)
    assert not votes.is_confident(key)
    votes.add(key, age_at(70), np.array([0.05, 0.95]), 1.0)
    assert votes.is_confident(key)
    votes.add(("door", 3), age_at(30), np.array([0.5, 0.5]), 1.0)
    votes.add(("door", 3), age_at(32), np.array([0.5, 0.5]), 1.0)
    assert not votes.is_confident(("door", 3))


def test_unknown_when_never_classified() -> None:
    assert voter().finish([("door", 9)]).age_group == "unknown"


def test_a_visit_of_two_tracks_pools_their_votes() -> None:
    votes = voter()
    votes.add(("door", 1), age_at(70), np.array([0.1, 0.9]), 1.0)
    votes.add(("door", 4), age_at(75), np.array([0.2, 0.8]), 1.0)
    result = votes.finish([("door", 1), ("door", 4)])
    assert (result.samples, result.age_group, result.gender) == (2, "old", "male")


def test_a_replay_limits_each_track_to_k_samples_and_stops_a_sure_track() -> None:
    female, male = np.array([0.99, 0.01]), np.array([0.01, 0.99])
    # a visit of two tracks: a good look at a woman, then two poorer ones of a man
    visit_log = ((logged(25, female, 0.9),), (logged(25, male, 0.5), logged(25, male, 0.5)))
    votes = voter(confident_at=1.0)
    assert votes.replay(visit_log, 1).gender == "female"  # 0.9 against 0.5
    assert votes.replay(visit_log, 2).gender == "male"  # 0.9 against 1.0: K counts per track, not per visit
    sure_then_wrong = ((logged(25, female, 1.0),) * 2 + (logged(25, male, 1.0),) * 3,)
    assert voter(confident_at=1.0).replay(sure_then_wrong, 5).gender == "male"
    sure = voter(confident_at=0.95).replay(sure_then_wrong, 5)
    assert (sure.gender, sure.samples) == ("female", 2)  # sure after two: the rest are never classified
    assert votes.replay((), 3).gender == "unknown"


def test_the_sample_log_is_kept_per_track_only_when_asked() -> None:
    logging, silent = voter(), voter()
    logging.keep_sample_log = True
    for votes in (logging, silent):
        votes.add(("door", 1), age_at(30), np.array([0.6, 0.4]), 1.0)
        votes.add(("door", 2), age_at(30), np.array([0.6, 0.4]), 1.0)
        votes.add(("door", 2), age_at(40), np.array([0.3, 0.7]), 0.5)
    log = logging.finish([("door", 1), ("door", 2)]).sample_log
    assert [len(track) for track in log] == [1, 2] and log[1][1].quality == 0.5
    assert silent.finish([("door", 1), ("door", 2)]).sample_log == ()


def test_only_a_tracks_best_k_samples_vote() -> None:
    votes = AttributeVoter(
        parse_grouping("three", [{"name": "young", "ages": "0-30"}, {"name": "old", "ages": "31+"}]),
        FINE_AGE_EDGES,
        np.asarray(FINE_AGE_EDGES),
        ("female", "male"),
        0.95,
        samples_per_track=2,
    )
    key = ("door", 1)
    votes.add(key, age_at(25), np.array([0.1, 0.9]), quality=0.3)  # far and small: says male
    votes.add(key, age_at(25), np.array([0.6, 0.4]), quality=0.5)
    votes.add(key, age_at(25), np.array([0.7, 0.3]), quality=0.8)  # close: the first sample stops voting
    result = votes.finish([key])
    assert (result.gender, result.samples) == ("female", 2)
    assert result.gender_p["female"] == pytest.approx((0.6 * 0.5 + 0.7 * 0.8) / 1.3, abs=1e-3)


def test_a_best_k_replay_takes_later_better_samples_and_first_k_does_not() -> None:
    female, male = np.array([0.9, 0.1]), np.array([0.2, 0.8])
    walking_closer = (logged(30, male, 0.2), logged(30, male, 0.3), logged(30, female, 0.9), logged(30, female, 0.95))
    votes = voter(confident_at=1.0)
    first = votes.replay((walking_closer,), 2)
    assert (first.gender, first.samples) == ("male", 2)
    best = votes.replay((walking_closer,), 2, max_classified=4)
    assert (best.gender, best.samples, best.gender_p["female"]) == ("female", 2, pytest.approx(0.9, abs=1e-3))
    one_more_call = votes.replay((walking_closer,), 2, max_classified=3)  # 0.9 replaces 0.2; 0.95 never classified
    assert one_more_call.gender_p["female"] == pytest.approx((0.2 * 0.3 + 0.9 * 0.9) / 1.2, abs=1e-3)


@pytest.mark.parametrize(
    ("gender_probs", "ages", "gender", "age_group"),
    [
        ([0.55, 0.45], [25, 27], "unknown", "young"),  # a coin toss of a gender is not published as one
        ([0.1, 0.9], [29, 33], "male", "unknown"),  # half young, half middle-aged: no age group
        ([0.3, 0.7], [40, 42], "male", "middle"),
    ],
)
def test_an_unsure_vote_is_unknown_with_its_probabilities_kept(
    gender_probs: list[float], ages: list[int], gender: str, age_group: str
) -> None:
    votes = voter()
    votes.min_gender_p, votes.min_age_group_p = 0.6, 0.6
    for age in ages:
        votes.add(("door", 1), age_at(age), np.array(gender_probs), 1.0)
    result = votes.finish([("door", 1)])
    assert (result.gender, result.age_group) == (gender, age_group)
    assert result.gender_p["male"] == pytest.approx(gender_probs[1])  # the message keeps what the vote said
    assert sum(result.age_group_p.values()) == pytest.approx(1.0)


def test_a_covered_face_is_unknown_however_sure_the_network_is() -> None:
    # a masked face passes the face check (its eyes and brows are a face) but shows little of one: the network
    # reads the eyes and hair and stays sure
    votes = voter()
    votes.min_face_presence = 8.0
    male = np.array([0.1, 0.9])
    for presence in (3.5, 6.0, 12.0):  # a median of 6: mostly covered, one good look
        votes.add(("door", 1), age_at(25), male, 1.0, presence)
    for presence in (6.0, 14.0, 20.0):  # a median of 14: the face shown
        votes.add(("door", 2), age_at(25), male, 1.0, presence)
    assert votes.caption(("door", 1)) == "unknown (face covered)"  # the preview's caption
    covered, shown = votes.finish([("door", 1)]), votes.finish([("door", 2)])
    assert (covered.gender, covered.age_group, covered.face_presence) == ("unknown", "unknown", 6.0)
    assert covered.gender_p["male"] == pytest.approx(0.9)  # the message keeps what the vote said
    assert (shown.gender, shown.age_group, shown.face_presence) == ("male", "young", 14.0)
    votes.add(("door", 3), age_at(25), male, 1.0)  # no face check: nothing to go by
    assert votes.finish([("door", 3)]).gender == "male"


def test_a_replay_keeps_the_covered_face_rule() -> None:
    votes = voter(confident_at=1.0)
    votes.min_face_presence = 8.0
    masked = tuple(LoggedSample(age_at(25), np.array([0.1, 0.9]), 1.0, presence) for presence in (2.0, 4.0, 30.0))
    assert votes.replay((masked,), 3).gender == "unknown"
    assert votes.replay((masked[2:],), 3).gender == "male"
