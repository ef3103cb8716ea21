import numpy as np
import pandas as pd
import pytest

from tower_zoo.data import build_interaction_data, random_exposure_split, synthetic_interactions
from tower_zoo.data.schema.spec import NumericFeature


@pytest.fixture(scope="module")
def data():
    return synthetic_interactions(num_users=50, num_items=30, interactions_per_user=10)


def test_drops_rating_three_labels_above_three_and_splits_at_random(data):
    split = random_exposure_split(data, seed=7)
    kept = data.ratings[data.ratings["rating"] != 3]
    sizes = {part: len(frame) for part, frame in split.parts.items()}
    assert sum(sizes.values()) == len(kept)
    assert sizes["test"] == round(0.2 * len(kept)) and sizes["valid"] == round(0.2 * (len(kept) - sizes["test"]))
    rows = pd.concat(split.parts.values())
    assert not (rows["rating"] == 3).any()
    np.testing.assert_array_equal(rows["label"], (rows["rating"] > 3).astype(int))
    keys = [set(zip(f["user_id"], f["timestamp"])) for f in split.parts.values()]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])      # disjoint parts
    again, other = random_exposure_split(data, seed=7), random_exposure_split(data, seed=8)
    pd.testing.assert_frame_equal(again.parts["test"], split.parts["test"])
    assert not other.parts["test"].equals(split.parts["test"])
    # Test rows are not the latest ones: the split ignores time.
    assert split.parts["test"]["timestamp"].min() < split.parts["train"]["timestamp"].max()


def test_examples_come_from_the_tables_and_row_features(data):
    split = random_exposure_split(data, seed=0)
    assert "history" not in split.feature_spec.names                               # time-dependent: not here
    examples = split.examples("valid")
    frame = split.parts["valid"]
    encoded_items = data.encode_table("item")
    rows = pd.Index(data.items["item_id"]).get_indexer(frame["item_id"])
    np.testing.assert_array_equal(examples["category"], encoded_items["category"][rows])
    np.testing.assert_array_equal(split.labels("valid")["like"], frame["label"].to_numpy(np.float32))
    feature = NumericFeature("row_score", "user")
    values = {part: {"row_score": np.arange(len(f), dtype=np.float32)} for part, f in split.parts.items()}
    extended = split.with_row_features([feature], values)
    np.testing.assert_array_equal(extended.examples("test")["row_score"], np.arange(len(split.parts["test"])))
    assert set(extended.select(["segment"]).feature_spec.names) == {"user_id", "item_id", "segment"}
    with pytest.raises(ValueError, match="part 'train' lacks values for \\['row_score'\\]"):
        split.with_row_features([feature], {"valid": values["valid"], "test": values["test"]})
    with pytest.raises(ValueError, match="row_score.*non-finite"):
        split.with_row_features([feature], {p: {"row_score": np.full(len(f), np.nan, np.float32)}
                                            for p, f in split.parts.items()})


def test_bad_arguments(data):
    with pytest.raises(ValueError, match="test_fraction"):
        random_exposure_split(data, seed=0, test_fraction=1.0)
    tiny = build_interaction_data("tiny", pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2], "rating": [3.0, 3.0],
                                                        "timestamp": [1, 2]}),
                                  pd.DataFrame({"user_id": [1]}), pd.DataFrame({"item_id": [1, 2]}))
    with pytest.raises(ValueError, match="0 ratings left after dropping \\[3.0\\]"):
        random_exposure_split(tiny, seed=0)
