"""Anomaly detection: AnomalyDetector's sign conventions and threshold, its scores, scikit-learn's own outlier
checks, and the ``aekit anomaly`` command."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

import aekit
from aekit.apps.anomaly import AnomalyDetector, default_model, scoring_families

TINY = {"hidden_dims": (8,), "latent_dim": 2, "max_epochs": 2, "batch_size": 16, "verbose": 0, "random_state": 0}


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Normal data near a 2-D plane in 6-D, and a far cluster of outliers off it."""
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((2, 6))
    normal = rng.standard_normal((200, 2)) @ B + 0.05 * rng.standard_normal((200, 6))
    outliers = 4.0 + rng.standard_normal((20, 6))
    return normal.astype(np.float32), outliers.astype(np.float32)


def test_signs_threshold_and_outlier_cluster() -> None:
    normal, outliers = _blobs()
    det = AnomalyDetector(aekit.Autoencoder(**{**TINY, "max_epochs": 8}), n_neighbors=0, contamination=0.1).fit(normal)
    X = np.concatenate([normal, outliers])
    s, d, p = det.score_samples(X), det.decision_function(X), det.predict(X)
    # Without the code term, score_samples is minus the reconstruction error; decision_function is its negation
    # shifted by threshold_.
    np.testing.assert_allclose(s, -det.model_.reconstruction_error(X), rtol=1e-6)
    np.testing.assert_allclose(d, -s - det.threshold_, rtol=1e-6)
    assert det.offset_ == -det.threshold_ and det.normalize_ == "none" and det.n_neighbors_ == 0
    np.testing.assert_array_equal(p, np.where(d > 0, -1, 1))
    assert set(np.unique(p)) <= {-1, 1} and p.dtype.kind == "i"
    # The threshold is the (1 - contamination) quantile of the training abnormality.
    train_abn = det.model_.reconstruction_error(normal)
    assert det.threshold_ == pytest.approx(np.quantile(train_abn, 0.9), rel=1e-6)
    np.testing.assert_allclose(det.decision_scores_, det.decision_function(normal), rtol=1e-5)
    assert np.mean(det.predict(normal) == -1) == pytest.approx(0.1, abs=0.01)
    # The far cluster scores above every normal sample and is called anomalous.
    assert d[200:].min() > np.quantile(d[:200], 0.99)
    assert (p[200:] == -1).all()
    # fit_predict labels the training data as predict does after fit, without the code term; with it, from the
    # leave-one-out training scores.
    np.testing.assert_array_equal(AnomalyDetector(aekit.Autoencoder(**TINY), n_neighbors=0).fit_predict(normal),
                                  AnomalyDetector(aekit.Autoencoder(**TINY), n_neighbors=0).fit(normal).predict(normal))
    knn = AnomalyDetector(aekit.Autoencoder(**TINY))
    np.testing.assert_array_equal(knn.fit_predict(normal), np.where(knn.decision_scores_ > 0, -1, 1))


def test_code_distance_term_against_a_direct_computation() -> None:
    """a(x) = standardized error + standardized mean distance to the k nearest training codes, the training
    samples' distances leaving the sample itself out; computed here by brute force with numpy."""
    normal, outliers = _blobs(2)
    k = 4
    det = AnomalyDetector(aekit.Autoencoder(**TINY), n_neighbors=k, contamination=0.2).fit(normal)
    m = det.model_
    X = np.concatenate([normal[:7], outliers])

    def distances(A: np.ndarray, B: np.ndarray, skip_self: bool) -> np.ndarray:
        D = np.sqrt(((B[:, None, :].astype(np.float64) - A[None, :, :]) ** 2).sum(-1))
        D = np.sort(D, axis=1)
        return D[:, 1:k + 1].mean(1) if skip_self else D[:, :k].mean(1)

    Ztr, Zx = m.transform(normal), m.transform(X)
    e_tr, e_x = m.reconstruction_error(normal).astype(np.float64), m.reconstruction_error(X).astype(np.float64)
    d_tr, d_x = distances(Ztr, Ztr, True), distances(Ztr, Zx, False)
    want = (e_x - e_tr.mean()) / e_tr.std() + (d_x - d_tr.mean()) / d_tr.std()
    np.testing.assert_allclose(-det.score_samples(X), want, rtol=1e-4, atol=1e-4)
    train_a = (e_tr - e_tr.mean()) / e_tr.std() + (d_tr - d_tr.mean()) / d_tr.std()
    assert det.threshold_ == pytest.approx(np.quantile(train_a, 0.8), rel=1e-4, abs=1e-4)
    np.testing.assert_allclose(det.decision_scores_, train_a - det.threshold_, rtol=1e-4, atol=1e-4)
    assert np.mean(det.fit_predict(normal) == -1) == pytest.approx(0.2, abs=0.01)
    assert det.n_neighbors_ == k and det.normalize_ == "none"  # a table is never scaled per sample


def test_fitted_model_is_used_as_is_and_likelihood_scores() -> None:
    normal, outliers = _blobs(1)
    fa = aekit.FactorAnalysisAutoencoder(latent_dim=2).fit(normal)
    det = AnomalyDetector(fa, n_neighbors=0, contamination=0.05).fit(normal)
    assert det.model_ is fa and det.score_ == "likelihood"  # "auto" picks the likelihood of a loglik family
    X = np.concatenate([normal, outliers])
    np.testing.assert_allclose(det.score_samples(X), fa.score_samples(X), rtol=1e-6)
    assert det.decision_function(outliers).min() > det.decision_function(normal).max()
    rec = AnomalyDetector(fa, score_type="reconstruction", n_neighbors=0).fit(normal)
    np.testing.assert_allclose(rec.score_samples(X), -fa.reconstruction_error(X), rtol=1e-6)
    # An unfitted model is cloned, never fitted in place.
    ae = aekit.Autoencoder(**TINY)
    assert AnomalyDetector(ae).fit(normal).model_ is not ae and not hasattr(ae, "module_")
    assert "factor-analysis" in scoring_families()["likelihood"]
    # The default model's code narrows with the data: 30 features -> 3 units, MNIST's 784 -> 16, tiny tables -> 2.
    assert [default_model(d).latent_dim for d in (30, 784, 6)] == [3, 16, 2]
    # Unclipped output, also on images in [0, 1]: an overshoot past the range is part of the abnormality score.
    assert default_model(784).output == "linear"


def test_tables_default_to_factor_analysis_scored_by_likelihood() -> None:
    """Given no model, a table gets factor analysis scored by its log-likelihood alone (checked against
    scikit-learn's FactorAnalysis), which catches samples that lie in the normal data's plane but far out, where the
    reconstruction error of the same model sees nothing; images and given models keep the autoencoder's defaults."""
    from sklearn.decomposition import FactorAnalysis
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    B = rng.standard_normal((2, 16))
    normal = (rng.standard_normal((150, 2)) @ B + 0.1 * rng.standard_normal((150, 16)) + 3).astype(np.float32)
    u = rng.standard_normal((30, 2))
    far = (4 * u / np.linalg.norm(u, axis=1, keepdims=True) @ B + 0.1 * rng.standard_normal((30, 16)) + 3)
    X = np.concatenate([normal, far.astype(np.float32)])
    det = AnomalyDetector().fit(normal)
    assert isinstance(det.model_, aekit.FactorAnalysisAutoencoder) and det.model_.latent_dim == 2  # clip(16 // 8, 2, 16)
    assert det.score_ == "likelihood" and det.n_neighbors_ == 0 and det.normalize_ == "none" and det.term_stats_ == []
    ref = FactorAnalysis(n_components=2, tol=1e-10, max_iter=10000).fit(normal.astype(np.float64))
    np.testing.assert_allclose(det.score_samples(X), ref.score_samples(X.astype(np.float64)), atol=0.05)
    truth = np.r_[np.zeros(150), np.ones(30)]
    rec = AnomalyDetector(det.model_, score_type="reconstruction", n_neighbors=0).fit(normal)
    assert roc_auc_score(truth, det.decision_function(X)) > 0.95 > 0.7 > roc_auc_score(truth, rec.decision_function(X))
    assert (det.predict(far) == -1).mean() > 0.9
    # The number of factors follows the code-size rule, at most one per feature; images keep the autoencoder.
    assert [default_model(d, table=True).latent_dim for d in (30, 64, 1)] == [3, 8, 1]
    assert isinstance(default_model(784), aekit.Autoencoder)
    # A model given for a table keeps the code distance (n_neighbors="auto" is 5 but for the tables' default).
    assert AnomalyDetector(aekit.Autoencoder(**TINY)).fit(normal).n_neighbors_ == 5


def _unit(X: np.ndarray) -> np.ndarray:
    """Each image divided by its Euclidean norm, in float64 numpy, cast to float32."""
    norms = np.linalg.norm(X.reshape(len(X), -1).astype(np.float64), axis=1)
    return (X / norms.reshape(-1, *([1] * (X.ndim - 1)))).astype(np.float32)


def test_images_of_any_shape_scaled_to_unit_norm() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((40, 3, 5, 7)).astype(np.float32)
    det = AnomalyDetector(aekit.Autoencoder(**TINY), n_neighbors=0, rescaled_error=False).fit(X)
    assert det.decision_function(X).shape == (40,) and det.n_features_in_ == 105
    # Images are scaled to unit norm when the detector trains the model: the model saw X / ||X||.
    U = _unit(X)
    np.testing.assert_allclose(np.linalg.norm(U.reshape(40, -1), axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(U * np.linalg.norm(X.reshape(40, -1), axis=1)[:, None, None, None], X, rtol=1e-5)
    assert det.normalize_ == "unit" and not det.rescaled_error_ and det.term_stats_ == []
    np.testing.assert_allclose(det.score_samples(X), -det.model_.reconstruction_error(U), rtol=1e-6)
    np.testing.assert_allclose(det.score_samples(3 * X), det.score_samples(X), rtol=1e-5)  # blind to the scale
    # With the error at the image's own scale (the default): a(x) = S(e) + S(||x||^2 e), each term standardized by
    # the training data's mean and std, computed here directly; the same model, so the fit is not repeated.
    full = clone(det).set_params(rescaled_error=True)
    full.model = det.model_  # fitted: used as it is, on unit-norm images as told
    full.set_params(normalize="unit").fit(X)
    assert full.rescaled_error_ and len(full.term_stats_) == 2
    n2 = (X.reshape(40, -1).astype(np.float64) ** 2).sum(1)
    e_tr = det.model_.reconstruction_error(U).astype(np.float64)
    r_tr = n2 * e_tr
    Y = np.concatenate([X[:5], 3 * X[:5], 0.5 * X[:5]])
    e_y = det.model_.reconstruction_error(_unit(Y)).astype(np.float64)
    r_y = (Y.reshape(15, -1).astype(np.float64) ** 2).sum(1) * e_y
    want = (e_y - e_tr.mean()) / e_tr.std() + (r_y - r_tr.mean()) / r_tr.std()
    np.testing.assert_allclose(full.term_stats_, [(e_tr.mean(), e_tr.std()), (r_tr.mean(), r_tr.std())], rtol=1e-5)
    stats = list(full.term_stats_)
    np.testing.assert_allclose(-full.score_samples(Y), want, rtol=1e-5, atol=1e-5)  # float32 unit images: 1 ulp apart
    # The scale now counts, in the expected direction: the same shapes brighter are more abnormal, and by exactly
    # (9 - 1) ||x||^2 e / std r for 3 x; scoring other data leaves the training statistics as they were.
    a = -full.score_samples(Y)
    assert (a[5:10] > a[:5]).all() and (a[10:] < a[:5]).all()
    np.testing.assert_allclose(a[5:10] - a[:5], 8 * r_y[:5] / r_tr.std(), rtol=1e-4)
    assert full.term_stats_ == stats
    # Never for tables (no unit norm) nor for the likelihood score.
    assert not AnomalyDetector(aekit.Autoencoder(**TINY), n_neighbors=0).fit(_blobs()[0]).rescaled_error_
    fa = AnomalyDetector(aekit.FactorAnalysisAutoencoder(latent_dim=2), n_neighbors=0).fit(X)
    assert fa.normalize_ == "unit" and fa.score_ == "likelihood" and not fa.rescaled_error_ and fa.term_stats_ == []
    # A model given fitted keeps the data as it was trained on, unless told otherwise.
    assert AnomalyDetector(det.model_, n_neighbors=0).fit(X).normalize_ == "none"
    assert AnomalyDetector(det.model_, n_neighbors=0, normalize="unit").fit(X).normalize_ == "unit"


@pytest.mark.parametrize(("kw", "match"), [
    ({"contamination": 0.0}, r"contamination=0\.0 must be a fraction in \(0, 0\.5\]"),
    ({"contamination": 0.7}, r"contamination=0\.7 must be a fraction in \(0, 0\.5\]"),
    ({"score_type": "magic"}, r"score_type='magic' is not one of auto, reconstruction, likelihood"),
    ({"normalize": "l1"}, r"normalize='l1' is not one of auto, unit, none; e.g. normalize='auto'"),
    ({"rescaled_error": "yes"}, r"rescaled_error='yes' must be True or False .*; e.g. rescaled_error=True"),
    ({"rescaled_error": 1}, r"rescaled_error=1 must be True or False"),
    ({"n_neighbors": -1}, r"n_neighbors=-1 must be an integer >= 0, .*; e.g. n_neighbors=5"),
    ({"n_neighbors": 2.5}, r"n_neighbors=2.5 must be an integer >= 0"),
    ({"score_type": "likelihood"}, r"score_type='likelihood' needs a family with a likelihood, and 'autoencoder' has none; "
                              r"use score_type='reconstruction', or a family that has one: .*vae"),
])
def test_bad_parameters(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AnomalyDetector(aekit.Autoencoder(**TINY), **kw).fit(_blobs()[0])


def test_unfitted_detector() -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted yet"):
        AnomalyDetector().decision_function(_blobs()[0])


def expected_failed_checks(estimator: Any) -> dict[str, str]:
    """Checks that cannot apply, with the reason (the tables' default, factor analysis by its likelihood, has no
    code-distance term, so its fit_predict is fit(X).predict(X) and that check applies)."""
    failing = {
        "check_outliers_train": "decision_function has PyOD's sign (higher is more abnormal, positive for anomalies) "
                                "where this check wants scikit-learn's (positive for inliers); the rest of what it "
                                "checks is tested in test_signs_threshold_and_outlier_cluster",
        "check_outliers_fit_predict": "with the code-distance term, fit_predict labels the training data by each "
                                      "code's distance to the other training codes (as LocalOutlierFactor does), "
                                      "predict by the distance to all of them, itself included; the rest of what "
                                      "it checks is tested in test_signs_threshold_and_outlier_cluster and "
                                      "test_code_distance_term_against_a_direct_computation",
    }
    if estimator.model is None:
        del failing["check_outliers_fit_predict"]
    return failing


@parametrize_with_checks([AnomalyDetector(aekit.Autoencoder(**TINY)), AnomalyDetector()],
                         expected_failed_checks=expected_failed_checks)
def test_sklearn_outlier_checks(estimator: Any, check: Any) -> None:
    check(estimator)


# ------------------------------------------------------------------------------------ the CLI


def call(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from aekit.cli.main import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def zeros_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model of the digit 0, trained on the zeros of the bundled digits' training split."""
    d = aekit.load_dataset("digits", split="train")
    run = tmp_path_factory.mktemp("anomaly") / "zeros"
    aekit.Autoencoder(**{**TINY, "hidden_dims": (16,), "max_epochs": 3}).fit(d.X[d.y == 0]).save(run)
    return run


def test_anomaly_command_scores_auc_and_figure(zeros_run: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    out = tmp_path / "scores.csv"
    code, o, err = call(capsys, "anomaly", str(zeros_run), "--data", "digits", "--normal-label", "0",
                        "--out", str(out), "--json")
    assert code == 0, err
    res = json.loads(o)
    table = np.genfromtxt(out, delimiter=",", names=True)
    test = aekit.load_dataset("digits", split="test")
    assert table.shape == (len(test),) and res["n_samples"] == len(test)
    np.testing.assert_array_equal(table["anomaly"], (test.y != 0).astype(int))
    # The printed figures are scikit-learn's on the written scores.
    assert res["roc_auc"] == pytest.approx(roc_auc_score(table["anomaly"], table["score"]), abs=1e-12)
    assert res["average_precision"] == pytest.approx(average_precision_score(table["anomaly"], table["score"]),
                                                     abs=1e-12)
    assert res["roc_auc"] > 0.8  # a model of zeros tells the other digits apart
    np.testing.assert_array_equal(table["prediction"], np.where(table["score"] > 0, -1, 1))
    fig = tmp_path / "scores-histogram.png"
    assert res["figure"] == str(fig) and fig.read_bytes().startswith(b"\x89PNG")
    # Never over an existing file without --overwrite.
    code, _, err = call(capsys, "anomaly", str(zeros_run), "--data", "digits", "--normal-label", "0", "--out", str(out))
    assert code == 2 and f"--out {out} already exists; pass --overwrite" in err
    # 0/1 labels from a file, text output; the figure goes into the run without --out.
    labels = tmp_path / "labels.npy"
    np.save(labels, (test.y != 0).astype(np.int64))
    code, o, err = call(capsys, "anomaly", str(zeros_run), "--data", "digits", "--labels", str(labels))
    assert code == 0, err
    assert f"roc_auc {res['roc_auc']:.6f}" in o and (zeros_run / "anomaly-histogram.png").is_file()


def test_anomaly_command_adds_histograms_to_a_trained_runs_report(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from aekit.workflow.train import train_run

    run = tmp_path / "run"
    params = {**TINY, "hidden_dims": (16,), "device": "cpu"}
    train_run("autoencoder", params, {"name": "digits", "limit": 120}, run, eval_limit=30)
    code, o, err = call(capsys, "anomaly", str(run), "--data", "digits", "--normal-label", "0", "--json")
    assert code == 0, err
    res = json.loads(o)
    assert res["report_figure"] == str(run / "app-anomaly.png") and "figure" not in res
    assert (run / "app-anomaly.png").read_bytes().startswith(b"\x89PNG") and not (run / "anomaly-histogram.png").exists()
    page = (run / "report.html").read_text()
    assert "<h2>Anomaly detection</h2>" in page and "distance to 5 nearest codes" in page
    assert f"<td>{round(res['roc_auc'], 4)}</td>" in page
    # Scored again without the code term: the section is replaced, not added twice.
    code, o, err = call(capsys, "anomaly", str(run), "--data", "digits", "--normal-label", "0", "--neighbors", "0")
    assert code == 0, err
    page = (run / "report.html").read_text()
    assert page.count("<h2>Anomaly detection</h2>") == 1 and "nearest codes" not in page


@pytest.mark.parametrize(("args", "match"), [
    (["--neighbors", "-1"], r"expected an integer >= 0 \(0 leaves the code distance out\), e.g. 5; got '-1'"),
    (["--labels", "LABELS"], r"--labels .*labels.npy has 5 labels for 360 scored samples \(digits, 360 samples of the test split\); "
                               r"give one label per scored sample; or score every sample with --split all"),
    (["--normal-label", "12"], r"--normal-label 12: 12 is not a class of the labels of digits .*; give a class"),
    (["--contamination", "0.7"], r"expected a fraction in \(0, 0.5\]"),
    (["--score", "likelihood"], r"--score likelihood: --score 'likelihood' needs a family with a likelihood"),
    (["--out", "OUT/s.txt"], r"--out .*s.txt: scores are written as .csv files"),
    (["--data", "digits", "--labels", "LABELS3"], r"has the classes \[0, 1, 2\]; say which are normal with --normal-label"),
])
def test_anomaly_command_refusals(zeros_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  args: list[str], match: str) -> None:
    np.save(tmp_path / "labels.npy", np.zeros(5, dtype=np.int64))
    np.save(tmp_path / "labels3.npy", np.arange(360) % 3)
    args = [a.replace("LABELS3", str(tmp_path / "labels3.npy")).replace("LABELS", str(tmp_path / "labels.npy"))
            .replace("OUT", str(tmp_path)) for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = call(capsys, "anomaly", str(zeros_run), "--data", "digits", "--out", str(tmp_path / "s.csv"), *args)
    assert code == 2 and re.search(match, err), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
