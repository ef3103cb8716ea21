"""Input values and schema files (issue 21, items 6 and 11-15): an id, timestamp, weight or numeric value that
would be silently misread, and a schema value that would crash or exhaust memory, is one error naming the file,
the column (or key) and the row; ids a schema declares as strings are kept verbatim."""

import json
import math
import os
import pathlib
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from prepared_helpers import random_data, schema_dict, write_dataset
from tower_zoo.data.prepare.run import prepare
from tower_zoo.data.read.prepared import PreparedDataset
from tower_zoo.data.schema.dataset_schema import SchemaError, parse_schema
from tower_zoo.data.schema.loading import load_schema


def _source(tmp_path, **overrides) -> tuple[pathlib.Path, pathlib.Path]:
    directory = tmp_path / "source"
    return directory, write_dataset(random_data(seed=0, num_rows=200), directory, schema_dict(**overrides))


def _edit(path: pathlib.Path, edit) -> None:
    """Rewrites a Parquet file through pandas; ``edit(frame)`` returns the new frame or a pa.Table."""
    frame = edit(pq.read_table(path).to_pandas())
    pq.write_table(frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False), path)


def _with_value(column: str, row: int, value, dtype=float):
    def edit(frame):
        frame[column] = frame[column].astype(dtype)
        frame.loc[row, column] = value
        return frame
    return edit


def _uint64_items(frame):
    items = frame["item_id"].to_numpy().astype(np.uint64)
    items[2] = np.iinfo(np.uint64).max
    return pa.table({**{c: frame[c] for c in frame.columns if c != "item_id"}, "item_id": items})


# ============================================================================= item 6: ids, timestamps (and ratings)
@pytest.mark.parametrize("edit,message", [
    (_with_value("user_id", 3, 2.0 ** 63), r"ratings\.parquet: column 'user_id' row 4: id 9\.223372036854776e\+18 is "
                                           r"outside the int64 range"),
    (_with_value("user_id", 3, 1e19), r"ratings\.parquet: column 'user_id' row 4: id 1e\+19 is outside the int64"),
    (_with_value("user_id", 5, math.inf), r"ratings\.parquet: column 'user_id' row 6: id inf is not an integer"),
    (_with_value("item_id", 0, -math.inf), r"ratings\.parquet: column 'item_id' row 1: id -inf is not an integer"),
    (_uint64_items, r"ratings\.parquet: column 'item_id' row 3: id 18446744073709551615 is outside the int64 range"),
    (_with_value("timestamp", 6, math.inf), r"ratings\.parquet: column 'timestamp' row 7: timestamp inf is not a whole"),
    (_with_value("timestamp", 8, 2.0 ** 64), r"ratings\.parquet: column 'timestamp' row 9: timestamp "
                                             r"1\.8446744073709552e\+19 is outside the int64 range"),
    (_with_value("rating", 2, math.inf), r"ratings\.parquet: column 'rating' row 3: rating inf; expected a finite "
                                         "number"),
], ids=["float_2^63", "float_1e19", "inf", "minus_inf", "uint64", "inf_timestamp", "huge_timestamp", "inf_rating"])
def test_ids_and_timestamps_that_would_wrap_or_merge_are_refused(tmp_path, edit, message):
    directory, schema_file = _source(tmp_path)
    _edit(directory / "ratings.parquet", edit)
    with pytest.raises(ValueError, match=message):
        prepare(str(schema_file), str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path)) == ["source"]


@pytest.mark.parametrize("text", ["", "  ", "nan", "NaN", "\t"])
def test_empty_blank_and_nan_string_ids_are_refused(tmp_path, text):
    directory, schema_file = _source(tmp_path)
    _edit(directory / "ratings.parquet", lambda f: f.assign(item_id=["i" + str(v) for v in f["item_id"]]))
    _edit(directory / "items.parquet", lambda f: f.assign(item_id=["i" + str(v) for v in f["item_id"]]))
    _edit(directory / "items.parquet", _with_value("item_id", 6, text, object))
    with pytest.raises(ValueError, match=rf"items\.parquet: column 'item_id' row 7: null/NaN id \(the text "
                                         rf"{re.escape(repr(text))}"):
        prepare(str(schema_file), str(tmp_path / "out"))


def _csv_source(tmp_path, user_ids, declared=None, items_csv=False):
    """A CSV interaction file whose user ids are the given texts (written verbatim), Parquet side tables."""
    directory, schema_file = _source(tmp_path)
    frame = pq.read_table(directory / "ratings.parquet").to_pandas()
    frame["user_id"] = [user_ids[i % len(user_ids)] for i in range(len(frame))]
    lines = [",".join(frame.columns)] + [",".join(str(v) for v in row) for row in frame.itertuples(index=False)]
    (directory / "ratings.csv").write_text("\n".join(lines) + "\n")
    schema = json.loads(schema_file.read_text())
    schema["interactions"] = "ratings.csv"
    schema["users"] = None
    schema["features"]["user"] = {}
    if declared:
        schema["columns"]["user_id"] = {"column": "user_id", "type": declared}
    schema_file.write_text(json.dumps(schema))
    return directory, schema_file


def test_zero_padded_csv_ids_are_an_error_unless_the_schema_declares_their_type(tmp_path):
    ids = ["377", "0377", "12", "00012", "5"]
    _, schema_file = _csv_source(tmp_path / "auto", ids)
    with pytest.raises(ValueError, match=r"ratings\.csv: column 'user_id' row 2: id '0377' has leading zeros: read as "
                                         r"a number it would merge with 377; declare the column's type"):
        prepare(str(schema_file), str(tmp_path / "auto" / "out"))

    _, schema_file = _csv_source(tmp_path / "text", ids, declared="string")
    prepare(str(schema_file), str(tmp_path / "text" / "out"))
    prepared = PreparedDataset.open(tmp_path / "text" / "out")
    assert sorted(prepared.feature_spec.user_id.vocabulary) == sorted(ids)  # five users, kept verbatim
    assert prepared.stats["users"]["distinct_in_interactions"] == 5
    test_users = np.concatenate([chunk[3] for chunk in prepared.query_chunks("test", with_user_ids=True)])
    assert sorted(test_users.tolist()) == sorted(ids)  # each held out once, under its own text

    _, schema_file = _csv_source(tmp_path / "number", ids, declared="integer")
    prepare(str(schema_file), str(tmp_path / "number" / "out"))
    assert sorted(PreparedDataset.open(tmp_path / "number" / "out").feature_spec.user_id.vocabulary) == [5, 12, 377]


@pytest.mark.parametrize("ids,outcome", [
    (["7", "8.0", "9e1", "9223372036854775807"], [7, 8, 90, 2 ** 63 - 1]),   # whole numbers, exact at int64's end
    (["7", "8.5"], r"row 2: id 8\.5 is not an integer or a string"),
    (["7", "9223372036854775808"], r"row 2: id '9223372036854775808' is outside the int64 range"),
    (["7", "inf"], r"row 2: id inf is not an integer or a string"),
    (["7", "-07"], r"row 2: id '-07' has leading zeros: read as a number it would merge with -7"),
])
def test_integer_csv_ids_are_read_exactly_or_refused(tmp_path, ids, outcome):
    _, schema_file = _csv_source(tmp_path, ids)
    if isinstance(outcome, str):
        with pytest.raises(ValueError, match=r"ratings\.csv: column 'user_id' " + outcome):
            prepare(str(schema_file), str(tmp_path / "out"))
    else:
        prepare(str(schema_file), str(tmp_path / "out"))
        assert sorted(PreparedDataset.open(tmp_path / "out").feature_spec.user_id.vocabulary) == outcome


def test_a_declared_string_id_column_of_integers_becomes_their_text_and_matches_its_table(tmp_path):
    directory, schema_file = _source(tmp_path, columns={"user_id": {"column": "user_id", "type": "string"},
                                                        "item_id": "item_id", "timestamp": "timestamp",
                                                        "rating": "rating"})
    _edit(directory / "users.parquet", lambda f: f.assign(user_id=f["user_id"].astype(str)))  # text; ratings: int64
    prepare(str(schema_file), str(tmp_path / "out"))
    prepared = PreparedDataset.open(tmp_path / "out")
    vocabulary = prepared.feature_spec.user_id.vocabulary
    assert all(type(v) is str for v in vocabulary) and set(vocabulary) == {str(u) for u in range(1, 31)}
    users, ids = prepared.user_table()
    assert sorted(ids) == sorted(vocabulary)  # the table's text ids matched the interactions' integers


def test_an_undeclared_mix_of_text_and_integer_ids_says_how_to_declare_it(tmp_path):
    directory, schema_file = _source(tmp_path)
    _edit(directory / "items.parquet", lambda f: f.assign(item_id="i" + f["item_id"].astype(str)))
    with pytest.raises(ValueError, match=r"items\.parquet: column 'item_id' holds string ids, but other files or "
                                         r"tables hold integer ids: ids must have one type \(declare the column's "
                                         r"type: string"):
        prepare(str(schema_file), str(tmp_path / "out"))


def test_a_header_only_csv_names_the_file(tmp_path):
    directory, schema_file = _csv_source(tmp_path, ["1", "2"])
    (directory / "ratings.csv").write_text("user_id,item_id,rating,timestamp\n")
    with pytest.raises(ValueError, match=r"ratings\.csv: the file has no data rows \(a header only\)"):
        prepare(str(schema_file), str(tmp_path / "out"))


def test_grouplens_ids_beyond_int64_are_refused(tmp_path):
    from tower_zoo.data.builtin.movielens import movielens_1m

    (tmp_path / "ratings.dat").write_text("9223372036854775808::10::5::978300760\n1::10::3::978302109\n")
    (tmp_path / "users.dat").write_text("9223372036854775808::F::1::10::48067\n1::M::56::16::70072\n")
    (tmp_path / "movies.dat").write_text("10::Toy Story (1995)::Comedy\n")
    with pytest.raises(ValueError, match=r"ratings\.dat': column 'user_id' row 1: '9223372036854775808' is outside "
                                         r"the int64 range"):
        movielens_1m(tmp_path)
    (tmp_path / "ratings.dat").write_text("1::99999999999999999999::5::978300760\n")
    with pytest.raises(ValueError, match=r"column 'movie_id' row 1: '99999999999999999999' is outside the int64"):
        movielens_1m(tmp_path)


# ============================================================================= item 12: weights and numerics
@pytest.mark.parametrize("weights,message", [
    ({4: -1.0}, r"ratings\.parquet: column 'w' row 5: weight -1\.0; expected a finite number >= 0"),
    ({9: math.inf}, r"ratings\.parquet: column 'w' row 10: weight inf; expected a finite number >= 0"),
    ("zeros", r"column 'w' \(columns\.weight\) is 0 on every row of .*ratings\.parquet: every example would weigh "
              "nothing"),
], ids=["negative", "inf", "all_zero"])
def test_bad_weights_are_one_error_before_training(tmp_path, weights, message):
    directory, schema_file = _source(tmp_path, columns={"user_id": "user_id", "item_id": "item_id",
                                                        "timestamp": "timestamp", "weight": "w"})

    def edit(frame):
        frame["w"] = 0.0 if weights == "zeros" else 1.0
        for row, value in ({} if weights == "zeros" else weights).items():
            frame.loc[row, "w"] = value
        return frame

    _edit(directory / "ratings.parquet", edit)
    with pytest.raises(ValueError, match=message):
        prepare(str(schema_file), str(tmp_path / "out"))


def test_an_infinite_numeric_feature_is_refused(tmp_path):
    features = {"user": {"score": {"kind": "numeric"}}, "item": {}}
    directory, schema_file = _source(tmp_path, features=features)
    _edit(directory / "users.parquet", lambda f: f.assign(score=np.where(f.index == 3, np.inf, 1.0 * f.index)))
    with pytest.raises(ValueError, match=r"users\.parquet row 4: column 'score' \(numeric feature 'score'\) is inf; "
                                         "expected a finite number"):
        prepare(str(schema_file), str(tmp_path / "out"))


def test_a_null_inside_a_multi_valued_list_is_one_error(tmp_path):
    directory, schema_file = _source(tmp_path)

    def edit(frame):
        frame.at[2, "tags"] = ["x", None]
        return frame

    _edit(directory / "items.parquet", edit)
    with pytest.raises(ValueError, match=r"items\.parquet row 3: column 'tags' \(multi-valued feature 'tags'\) holds "
                                         "a null inside its list"):
        prepare(str(schema_file), str(tmp_path / "out"))


def test_a_list_longer_than_any_history_without_max_length_is_refused(tmp_path):
    features = {"user": {}, "item": {"tags": {"kind": "multi_valued"}}}  # max_length: the longest list
    directory, schema_file = _source(tmp_path, features=features)

    def edit(frame):
        frame.at[5, "tags"] = ["x"] * 100_001
        return frame

    _edit(directory / "items.parquet", edit)
    with pytest.raises(ValueError, match=r"items\.parquet row 6: column 'tags' \(multi-valued feature 'tags'\) holds "
                                         r"100,001 values, more than 100,000; set max_length"):
        prepare(str(schema_file), str(tmp_path / "out"))


# ============================================================================= items 13-14: schema values
def _parse(**overrides):
    return parse_schema({**schema_dict(), **overrides}, "my.yaml", "/data")


@pytest.mark.parametrize("overrides,message", [
    ({"features": {"user": {"age": {"kind": "numeric", "boundaries": 18}}}},
     "my.yaml: features.user.age.boundaries: expected a list of numbers, got 18"),
    ({"features": {"user": {"age": {"kind": "numeric", "boundaries": [18, "x"]}}}},
     "features.user.age.boundaries: expected a list of numbers, got [18, 'x']"),
    ({"items": {"path": "items.parquet", "id": "item_id", "display": 5}},
     "my.yaml: items.display: expected a column name or a list of column names, got 5"),
    ({"items": {"path": "items.parquet", "id": "item_id", "display": True}},
     "my.yaml: items.display: expected a column name or a list of column names, got True"),
    ({"history_length": 10 ** 9}, "my.yaml: history_length: expected an integer <= 100000, got 1000000000"),
    ({"features": {"item": {"tags": {"kind": "multi_valued", "max_length": 10 ** 9}}}},
     "my.yaml: features.item.tags.max_length: expected an integer <= 100000, got 1000000000"),
    ({"features": {"user": {5: {"kind": "numeric"}}}}, "my.yaml: features.user: feature names must be non-empty "
                                                       "strings, got 5"),
    ({"columns": {"user_id": {"column": "u", "type": "str"}, "item_id": "i"}},
     "my.yaml: columns.user_id.type: expected one of integer, string, got 'str'"),
    ({"columns": {"user_id": "u", "item_id": {"column": "i", "hash_buckets": 10 ** 9}}},
     "my.yaml: columns.item_id: hash_buckets 1000000000 with embedding_dim 32: needs about 357.6 GB "
     "(1,000,000,002 rows x 32 x 4 bytes x 3 with Adam's slots), more than the"),
    ({"features": {"user": {"gender": {"kind": "categorical", "hash_buckets": 10 ** 6, "embedding_dim": 10 ** 5}}}},
     "my.yaml: features.user.gender: hash_buckets 1000000 with embedding_dim 100000: needs about"),
])
def test_schema_values_that_crashed_or_exhausted_memory_are_one_schema_error(overrides, message):
    with pytest.raises(SchemaError) as error:
        _parse(**overrides)
    assert message in str(error.value)


def test_parse_schema_refuses_a_non_mapping():
    with pytest.raises(SchemaError, match="my.yaml: expected a mapping at the top level, got list"):
        parse_schema([1, 2], "my.yaml", "/data")


def test_yaml_aliases_and_duplicate_keys_are_refused(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b]\n"
    (tmp_path / "bomb.yaml").write_text(bomb)
    with pytest.raises(SchemaError, match=r"bomb\.yaml: cannot parse YAML: aliases \(\*a\) are not allowed"):
        load_schema(tmp_path / "bomb.yaml", check_files=False)
    (tmp_path / "twice.yaml").write_text(yaml.safe_dump(schema_dict()) + "history_length: 7\n")
    with pytest.raises(SchemaError, match=r"twice\.yaml: cannot parse YAML: duplicate key 'history_length'"):
        load_schema(tmp_path / "twice.yaml", check_files=False)
    text = json.dumps(schema_dict())
    (tmp_path / "twice.json").write_text(text[:-1] + ', "name": "other"}')
    with pytest.raises(SchemaError, match=r"twice\.json: cannot parse: duplicate key 'name'"):
        load_schema(tmp_path / "twice.json", check_files=False)
    (tmp_path / "nested.yaml").write_text("columns:\n  user_id: u\n  user_id: v\n  item_id: i\ninteractions: r.csv\n")
    with pytest.raises(SchemaError, match="duplicate key 'user_id'"):
        load_schema(tmp_path / "nested.yaml", check_files=False)




# ============================================================================= item 11: per-feature embedding_dim
def test_a_schema_embedding_dim_gives_that_feature_a_table_that_wide(tmp_path):
    import tower_zoo

    columns = {"user_id": "user_id", "item_id": {"column": "item_id", "embedding_dim": 12}, "timestamp": "timestamp",
               "rating": "rating"}
    features = {"user": {"gender": {"kind": "categorical", "embedding_dim": 8}, "age": {"kind": "numeric"}},
                "item": {"category": {"kind": "categorical"},
                         "tags": {"kind": "multi_valued", "max_length": 3, "embedding_dim": 4}}}
    _, schema_file = _source(tmp_path, columns=columns, features=features)
    prepare(str(schema_file), str(tmp_path / "out"))
    spec = PreparedDataset.open(tmp_path / "out").feature_spec
    model = tower_zoo.create_model("dssm", spec, embedding_dim=16, hidden_units=(8,)).build_weights()
    shapes = {w.name.split("/fields/")[1]: tuple(w.shape) for w in model.weights if "/fields/" in w.name}
    assert shapes["gender_field/gender_table/embeddings:0"] == (spec.get("gender").vocab_size, 8)
    assert shapes["gender_field/projection/kernel:0"] == (8, 16)
    assert shapes["item_id_field/item_id_table/embeddings:0"] == (spec.get("item_id").vocab_size, 12)
    assert shapes["tags_field/tags_embedding/embeddings:0"] == (spec.get("tags").vocab_size, 4)
    # features without their own width share the fused table at the model's width
    assert shapes["categorical_table/embeddings:0"] == (spec.get("category").vocab_size, 16)
    user_fields = model.user_tower.fields
    assert [user_fields.feature_width(n) for n in user_fields.feature_names] == [16, 8, 16, 16]
    assert user_fields(model.dummy_features()).shape[1:] == (4, 16)  # user_id, gender, age, history: 16 wide
    clone = type(model).from_config(model.get_config()).build_weights()  # the widths survive the config
    assert sorted(tuple(w.shape) for w in clone.weights) == sorted(tuple(w.shape) for w in model.weights)
    field = user_fields.field_layers["gender"]
    copy = type(field).from_config(field.get_config())
    assert (copy.dim, copy.embedding.output_dim, copy.embedding.input_dim) == (16, 8, spec.get("gender").vocab_size)


# ============================================================================= CLI: one line, nothing written
def _cli_error(args, capsys) -> str:
    from tower_zoo import cli

    cli.FLAGS.unparse_flags()
    try:
        assert cli.main(cli.FLAGS(["tower-zoo", *args])) == 2
    finally:
        cli.FLAGS.unparse_flags()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tower-zoo {args[0]}: error: "), lines
    return lines[0]


def test_train_settings_that_cannot_fit_or_be_written_fail_before_any_work(tmp_path, capsys):
    (tmp_path / "afile").write_text("not a directory")
    base = ["train", "--dataset", "synthetic", "--model", "dssm", "--epochs", "1", "--noevaluate"]
    for tensorboard, where in ((tmp_path / "afile", "is a file"),
                               (tmp_path / "afile" / "logs", f"is under the file {str(tmp_path / 'afile')!r}")):
        line = _cli_error([*base, "--out", str(tmp_path / "run1"), "--tensorboard", str(tensorboard)], capsys)
        assert f"trainer tensorboard_dir {str(tensorboard)!r} {where}, not a directory" in line
    line = _cli_error([*base, "--out", str(tmp_path / "run2"), "--negatives", "global", "--num_global_negatives",
                       "1000000000"], capsys)
    assert "trainer num_global_negatives=1000000000 with batch_size=512: needs about 7,629.4 GB (the [512, " \
           "1000000000] logits" in line and "of memory this machine has" in line
    line = _cli_error([*base, "--out", str(tmp_path / "run3"), "--set", "embedding_dim=100000000"], capsys)
    assert "dssm with embedding_dim=100000000: its embedding tables: needs about" in line
    assert "x 100,000,000 wide, x 4 bytes x 2 with the rowwise_adam optimizer's slots" in line
    assert not any((tmp_path / run / "run.json").exists() for run in ("run1", "run2", "run3"))


def test_train_on_declared_string_ids_trains(tmp_path):
    """`train --data` (its Python API) on a prepared directory whose user ids are declared strings with zero
    padding: the run trains one epoch and records the string vocabulary in its run."""
    from tower_zoo.prepared_runs import train_prepared_run

    ids = ["377", "0377", "12", "00012", "5", "x7"]
    _, schema_file = _csv_source(tmp_path, ids, declared="string")
    prepare(str(schema_file), str(tmp_path / "prepared"))
    model, prepared, history = train_prepared_run(
        str(tmp_path / "run"), "dssm", str(tmp_path / "prepared"), model_overrides={"hidden_units": (8,)},
        trainer_overrides={"epochs": 1, "batch_size": 32}, verbose=False)
    assert [h["epoch"] for h in history] == [1] and math.isfinite(history[0]["loss"])
    assert sorted(model.feature_spec.user_id.vocabulary) == sorted(ids)
