"""Exports serve raw features as the in-memory model scores them, for every ML-100K user: the retrieval user
tower and exact top-k SavedModel (with exclusion), and the candidate scorer of every registered pre-ranking
model (and poly_encoder, which a top-k export refuses). The SavedModels load in a fresh process with plain
``tf.saved_model.load`` (no tower_zoo), their signatures are what ``saved_model_cli`` shows, and bad requests
are refused naming what is wrong."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tower_zoo
from tower_zoo import serving
from tower_zoo.data import movielens_100k
from tower_zoo.evaluation.index import ExactIndex
from tower_zoo.runs import raw_user_rows
from tower_zoo.serving.requests import id_matrix, request_arrays

CANDIDATES_PER_USER = 25


@pytest.fixture(scope="module")
def ml100k():
    data = movielens_100k()
    items = data.encode_table("item")
    rows = raw_user_rows(data)
    return data, items, data.items["item_id"].to_numpy(np.int64), rows


def randomized(model, seed: int = 0):
    """Every weight drawn at random (scores spread widely without training; the temperature left alone)."""
    model.build_weights()
    rng = np.random.default_rng(seed)
    for variable in model.variables:
        if "temperature" not in variable.name:
            variable.assign(rng.normal(0.0, 0.3, variable.shape).astype(variable.dtype.as_numpy_dtype))
    return model


def user_features(data, rows):
    return rows[[f.name for f in data.feature_spec.user_features]]


@pytest.fixture(scope="module")
def retrieval_export(ml100k, tmp_path_factory):
    data, items, ids, rows = ml100k
    model = randomized(tower_zoo.create_model("dssm", data.feature_spec, embedding_dim=16))
    path = tmp_path_factory.mktemp("retrieval") / "export"
    serving.export(model, items, ids, str(path), users=rows, k=50, scann_in_savedmodel=True)
    return model, path


def test_retrieval_export_equals_the_in_memory_model_for_every_user(ml100k, retrieval_export):
    data, items, ids, rows = ml100k
    model, path = retrieval_export
    loaded = serving.load(str(path))
    features = user_features(data, rows)
    expected = model.user_embedding(data.feature_spec.encode(features, side="user")).numpy()
    np.testing.assert_allclose(loaded.raw_user_vectors(features), expected, atol=1e-5)
    item_vectors = model.item_embedding(items).numpy()
    want_ids, want_scores = ExactIndex(item_vectors, ids).search(expected, 50, list(rows["exclude"]))

    import tensorflow as tf

    top_k = tf.saved_model.load(str(path / "retrieval")).signatures["exclude"]
    inputs = request_arrays({k: v for k, v in top_k.structured_input_signature[1].items() if k != "exclude_ids"},
                            features, {"history": -1})
    found = top_k(**{k: tf.constant(v) for k, v in inputs.items()},
                  exclude_ids=tf.constant(id_matrix(list(rows["exclude"]), -1, "exclude")))
    np.testing.assert_array_equal(found["ids"].numpy(), want_ids)
    np.testing.assert_allclose(found["scores"].numpy(), want_scores, rtol=1e-5, atol=1e-5)
    assert not any(np.isin(found["ids"].numpy()[u], rows["exclude"][u]).any() for u in range(len(rows)))
    scann = tf.saved_model.load(str(path / "retrieval_scann")).signatures["serving_default"]
    approximate = scann(**{k: tf.constant(v) for k, v in inputs.items()})
    rows_found = np.searchsorted(ids, approximate["ids"].numpy())
    rescored = np.einsum("ud,ukd->uk", expected, item_vectors[rows_found])   # re-ordered: exact dot products
    np.testing.assert_allclose(approximate["scores"].numpy(), rescored, atol=1e-4)   # so the query is the user's
    exact, _ = ExactIndex(item_vectors, ids).search(expected, 50)
    overlap = np.mean([len(np.intersect1d(a, b)) / 50 for a, b in zip(approximate["ids"].numpy(), exact)])
    assert overlap > 0.5, overlap                   # random weights, no cluster structure: ANN's hard case


PRE_RANKING = tower_zoo.list_models(kind="pre_ranking")


@pytest.mark.parametrize("name", PRE_RANKING + ["poly_encoder"])
def test_candidate_scorer_equals_in_memory_scores_for_every_user(ml100k, tmp_path, name):
    data, items, ids, rows = ml100k
    model = randomized(tower_zoo.create_model(name, data.feature_spec))
    if name == "poly_encoder":
        with pytest.raises(ValueError, match="not ANN-indexable.*kind='pre_ranking'"):
            serving.export(model, items, ids, str(tmp_path / "top_k"))
    scorer = serving.export(model, items, ids, str(tmp_path / "export"), users=rows, kind="pre_ranking")
    features = user_features(data, rows)
    rng = np.random.default_rng(1)
    candidates = np.stack([rng.choice(ids, CANDIDATES_PER_USER, replace=False) for _ in range(len(rows))])
    got = scorer.score(features, candidates)
    encoded = data.feature_spec.encode(features, side="user")
    pairs = {k: np.repeat(v, CANDIDATES_PER_USER, axis=0) for k, v in encoded.items()}
    positions = data.items.reset_index().set_index("item_id").loc[candidates.reshape(-1), "index"].to_numpy()
    pairs.update({k: v[positions] for k, v in items.items()})
    expected = np.concatenate([model.score({k: v[s:s + 4096] for k, v in pairs.items()},
                                           {k: v[s:s + 4096] for k, v in pairs.items()}).numpy()
                               for s in range(0, len(positions), 4096)]).reshape(candidates.shape)
    assert np.std(expected) > 1e-3, "scores too flat for the comparison to mean anything"
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    state = scorer.user_state(features[:3])          # once per request, then per candidate set
    # Same computation on 3 users instead of all: only float32 rounding of other BLAS tilings may differ (a few
    # ulps of the largest score; this CPU measured 2.5e-6 against scores of order 10).
    np.testing.assert_allclose(scorer.score_state(state, candidates[:3]), got[:3], rtol=1e-5,
                               atol=1e-6 * max(1.0, np.abs(got[:3]).max()))
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert manifest["kind"] == "pre_ranking" and manifest["format_version"] == 2
    assert sorted(manifest["user_state"]) == sorted(state)


def test_scorer_requests_padding_unknown_ids_and_mismatched_rows(ml100k, tmp_path):
    data, items, ids, rows = ml100k
    model = randomized(tower_zoo.create_model("hit", data.feature_spec))
    scorer = serving.export(model, items, ids, str(tmp_path / "e"), kind="pre_ranking")
    features = user_features(data, rows)[:2]
    padded = scorer.score(features, [[1, 2, 3], [4]])                  # ragged: padded slots score -inf
    assert np.isfinite(padded[0]).all() and np.isfinite(padded[1, 0]) and (padded[1, 1:] == -np.inf).all()
    np.testing.assert_allclose(padded[1, 0], scorer.score(features[1:], [[4]])[0, 0], rtol=1e-6)
    with pytest.raises(ValueError, match=re.escape("candidate item ids not in the item cache of this export "
                                                   "(first few):] [99999]")):
        scorer.score(features, [[1, 99999], [2, 3]])
    with pytest.raises(ValueError, match="candidate_ids has 1 rows for 2 users"):
        scorer.score(features, [[1, 2]])
    with pytest.raises(ValueError, match="feature 'candidate_ids': id 1.5 at row 0 is not an integer"):
        scorer.score(features, [[1.5], [2]])
    with pytest.raises(ValueError, match="unknown feature 'mood'"):
        scorer.score({**{k: list(v) for k, v in features.items()}, "mood": ["happy", "sad"]}, [[1], [2]])


def saved_model_cli(path) -> str:
    result = subprocess.run(["saved_model_cli", "show", "--dir", str(path), "--all"], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_saved_model_cli_shows_raw_signatures(retrieval_export):
    _, path = retrieval_export
    shown = saved_model_cli(path / "retrieval")
    exclude = shown[shown.index("signature_def['exclude']"):shown.index("signature_def['serving_default']")]
    for expected in ("inputs['user_id'] tensor_info:\n        dtype: DT_INT64\n        shape: (-1)",
                     "inputs['gender'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)",
                     "inputs['age'] tensor_info:\n        dtype: DT_DOUBLE",
                     "inputs['history'] tensor_info:\n        dtype: DT_INT64\n        shape: (-1, -1)",
                     "inputs['exclude_ids'] tensor_info:\n        dtype: DT_INT64\n        shape: (-1, -1)",
                     "outputs['ids'] tensor_info:\n        dtype: DT_INT64\n        shape: (-1, 50)",
                     "outputs['scores'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 50)"):
        assert expected in exclude, expected
    tower = saved_model_cli(path / "user_tower")
    assert "signature_def['encoded']" in tower and "outputs['embedding']" in tower


FRESH = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    root, expected = sys.argv[1], np.load(sys.argv[2], allow_pickle=False)
    raw = {k[4:]: tf.constant(expected[k]) for k in expected.files if k.startswith("raw_")}
    top_k = tf.saved_model.load(root + "/retrieval")
    plain = top_k.signatures["serving_default"](**raw)
    excluding = top_k.signatures["exclude"](**raw, exclude_ids=tf.constant(expected["exclude_ids"]))
    np.testing.assert_array_equal(plain["ids"].numpy(), expected["ids"])
    np.testing.assert_array_equal(excluding["ids"].numpy(), expected["excluding_ids"])
    tower = tf.saved_model.load(root + "/user_tower").signatures["serving_default"](**raw)
    np.testing.assert_allclose(tower["embedding"].numpy(), expected["vectors"], atol=1e-5)
    assert not [m for m in sys.modules if m.startswith("tower_zoo")]
    print("served", plain["ids"].shape)
""")


def test_savedmodels_load_in_a_fresh_process_without_tower_zoo(ml100k, retrieval_export, tmp_path):
    import tensorflow as tf

    data, items, ids, rows = ml100k
    model, path = retrieval_export
    features = user_features(data, rows)[:20]
    raw = request_arrays({n: s for n, s in tf.saved_model.load(str(path / "user_tower")).signatures[
        "serving_default"].structured_input_signature[1].items()}, features, {"history": -1})
    vectors = model.user_embedding(data.feature_spec.encode(features, side="user")).numpy()
    index = ExactIndex(model.item_embedding(items).numpy(), ids)
    exclude = list(rows["exclude"][:20])
    np.savez(tmp_path / "expected.npz", **{f"raw_{k}": v.astype(str) if v.dtype == object else v
                                          for k, v in raw.items()},
             exclude_ids=id_matrix(exclude, -1, "exclude"), vectors=vectors, ids=index.search(vectors, 50)[0],
             excluding_ids=index.search(vectors, 50, exclude)[0])
    (tmp_path / "fresh.py").write_text(FRESH)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, str(tmp_path / "fresh.py"), str(path), str(tmp_path / "expected.npz")],
                            capture_output=True, text=True, timeout=300, cwd=str(tmp_path), env=env)
    assert result.returncode == 0 and "served (20, 50)" in result.stdout, result.stderr[-3000:]


def test_bad_requests_to_a_retrieval_export(ml100k, retrieval_export):
    data, _, _, rows = ml100k
    loaded = serving.load(str(retrieval_export[1]))
    features = user_features(data, rows)[:2]
    for change, message in [({"gender": [1, 2]}, "feature 'gender': expected strings, got 1 (int) at row 0"),
                            ({"user_id": [1.5, 2]}, "feature 'user_id': id 1.5 at row 0 is not an integer"),
                            ({"age": [30.0, float("inf")]}, "feature 'age': non-finite value inf at row 1")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            loaded.search_raw({**{k: list(v) for k, v in features.items()}, **change}, 5)
    with pytest.raises(ValueError, match=r"empty batch: feature '\w+' has 0 rows"):
        loaded.search_raw(features[:0], 5)
    unknown = features.assign(user_id=[10 ** 9, 2], zip_prefix=["zzz", "941"], history=[[10 ** 9], []])
    found, _ = loaded.search_raw(unknown, 5)       # unknown values: their OOV rows, as in training
    assert found.shape == (2, 5) and (found >= 0).all()
