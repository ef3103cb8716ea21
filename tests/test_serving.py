import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tower_zoo
from tower_zoo import serving
from tower_zoo.data import leave_last_out, movielens_100k, synthetic_interactions
from tower_zoo.training import Trainer


@pytest.fixture(scope="module")
def trained():
    split = leave_last_out(movielens_100k())
    model = tower_zoo.create_model("dssm", split.data.feature_spec)
    Trainer(model, epochs=1).fit(split.examples("train"), verbose=False)
    return split, model


def test_export_load_round_trip_equals_in_memory_even_after_a_move(trained, tmp_path):
    split, model = trained
    items, ids = split.candidates()
    queries, _, exclude = split.queries("test")
    in_memory = serving.export(model, items, ids, str(tmp_path / "export"))
    shutil.move(str(tmp_path / "export"), str(tmp_path / "moved"))        # ScaNN assets recorded old paths
    loaded = serving.load(str(tmp_path / "moved"))
    np.testing.assert_allclose(loaded.user_vectors(queries), in_memory.user_vectors(queries), atol=1e-6)
    expected_ids, expected_scores = in_memory.search(queries, 10, exclude)
    got_ids, got_scores = loaded.search(queries, 10, exclude)
    np.testing.assert_array_equal(got_ids, expected_ids)
    np.testing.assert_allclose(got_scores, expected_scores, rtol=1e-5)
    assert not any(np.isin(got_ids[q], exclude[q]).any() for q in range(len(exclude)))


def test_truncated_or_missing_files_are_refused(trained, tmp_path):
    split, model = trained
    items, ids = split.candidates()
    serving.export(model, items, ids, str(tmp_path / "e"))
    with pytest.raises(FileExistsError, match="exists"):
        serving.export(model, items, ids, str(tmp_path / "e"))
    path = tmp_path / "e" / "item_embeddings.npy"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="item_embeddings.npy.*checksum"):
        serving.load(str(tmp_path / "e"))
    os.remove(path)
    with pytest.raises(ValueError, match="missing item_embeddings.npy"):
        serving.load(str(tmp_path / "e"))
    with pytest.raises(FileNotFoundError, match="not a tower_zoo export"):
        serving.load(str(tmp_path / "nothing"))
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]       # no staging directory left behind


def test_multi_vector_models_are_not_exportable(tmp_path):
    split = leave_last_out(synthetic_interactions())
    model = tower_zoo.create_model("poly_encoder", split.data.feature_spec)
    items, ids = split.candidates()
    with pytest.raises(ValueError, match="not ANN-indexable"):
        serving.export(model, items, ids, str(tmp_path / "p"))
    assert not (tmp_path / "p").exists()


def test_cli_export_and_query(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "tower_zoo.cli", *a], capture_output=True,  # noqa: E731
                                    text=True, env=env, timeout=600)
    assert run("train", "--model", "dssm", "--epochs", "1", "--out", str(tmp_path / "run"),
               "--noevaluate").returncode == 0
    assert run("export", "--run", str(tmp_path / "run"), "--export_dir", str(tmp_path / "exp")).returncode == 0
    result = run("query", "--export_dir", str(tmp_path / "exp"), "--user_id", "1,2", "--k", "5")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("user ") == 2 and result.stdout.count("  5. ") == 2 and "(19" in result.stdout
    result = run("query", "--export_dir", str(tmp_path / "exp"), "--user_id", "99999")
    assert result.returncode == 2 and "unknown user_id 99999" in result.stderr


def test_scann_inside_a_savedmodel_round_trip(tmp_path):
    import tensorflow as tf

    from tower_zoo.runs import raw_user_rows
    from tower_zoo.serving.requests import request_arrays

    split = leave_last_out(synthetic_interactions(num_items=400))
    model = tower_zoo.create_model("dssm", split.data.feature_spec)
    Trainer(model, epochs=1, batch_size=64).fit(split.examples("train"), verbose=False)
    items, ids = split.candidates()
    retriever = serving.export(model, items, ids, str(tmp_path / "e"), scann_in_savedmodel=True, k=20)
    rows = raw_user_rows(split.data).drop(columns="exclude")[:25]
    loaded = tf.saved_model.load(str(tmp_path / "e" / "retrieval_scann")).signatures["serving_default"]
    arrays = request_arrays(dict(loaded.structured_input_signature[1]), rows, {"history": -1})
    features = {k: tf.constant(v) for k, v in arrays.items()}
    found = loaded(**features)["ids"].numpy()
    assert found.shape == (25, 20)
    exact, _ = retriever.search_raw(rows, 20)   # ScaNN (pybind) on the same vectors
    overlap = np.mean([len(np.intersect1d(a, b)) / 20 for a, b in zip(found, exact)])
    assert overlap > 0.8, overlap
    again = tf.saved_model.load(str(tmp_path / "e" / "retrieval_scann")).signatures["serving_default"]
    np.testing.assert_array_equal(again(**features)["ids"].numpy(), found)   # deterministic once saved


def test_unknown_raw_ids_map_to_oov_with_a_count(trained, tmp_path):
    import pandas as pd

    split, model = trained
    items, ids = split.candidates()
    retriever = serving.export(model, items, ids, str(tmp_path / "e"))
    frame = pd.DataFrame({"user_id": [1, 999_999], "age": [30, 30], "gender": ["F", "F"],
                          "occupation": ["writer", "astronaut"], "zip_prefix": ["941", "941"],
                          "history": [[50, 172, 181], [50, 123_456]]})
    encoded = retriever.encode_users(frame)
    assert encoded["user_id"].tolist()[1] == 1 and encoded["occupation"].tolist()[1] == 1   # OOV bucket
    assert retriever.oov_counter.counts == {"user_id": 1, "occupation": 1, "history": 1}
    found, _ = retriever.search(encoded, 5)
    assert found.shape == (2, 5) and (found >= 0).all()
