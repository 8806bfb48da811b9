"""Codes as features for a classifier: code_features against scikit-learn on the same codes, the ``features``
command, its bad input, and an autoencoder inside a scikit-learn Pipeline tuned by GridSearchCV."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import aekit
from aekit.apps.features import code_features
from aekit.cli.main import main

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def split() -> tuple[Any, Any]:
    return aekit.load_dataset("digits", split="train", limit=200), aekit.load_dataset("digits", split="test", limit=100)


@pytest.fixture(scope="module")
def pca_model(split: tuple[Any, Any]) -> Any:
    return aekit.LinearAutoencoder(latent_dim=6, verbose=0).fit(split[0].X)


def test_code_features_equal_scikit_learn_on_the_same_codes(pca_model: Any, split: tuple[Any, Any]) -> None:
    tr, te = split
    Z_tr, Z_te = pca_model.transform(tr.X), pca_model.transform(te.X)
    res = code_features(pca_model, tr.X, tr.y, te.X, te.y, raw=True)
    ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(Z_tr, tr.y).score(Z_te, te.y)
    raw = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(tr.X.reshape(200, -1), tr.y)
    assert res["accuracy"] == ref and res["n_features"] == 6
    assert res["raw_accuracy"] == raw.score(te.X.reshape(100, -1), te.y) and res["raw_n_features"] == 64
    knn = code_features(pca_model, tr.X, tr.y, te.X, te.y, classifier="knn", n_neighbors=3)
    assert knn["accuracy"] == KNeighborsClassifier(3).fit(Z_tr, tr.y).score(Z_te, te.y)
    assert 0.5 < knn["accuracy"] <= 1.0  # six principal axes carry most of the digits' classes


def test_code_features_bad_input(pca_model: Any, split: tuple[Any, Any]) -> None:
    tr, te = split
    with pytest.raises(ValueError, match=r"y_train has shape \(199,\), but X_train has 200 samples; give one label"):
        code_features(pca_model, tr.X, tr.y[:-1], te.X, te.y)
    with pytest.raises(ValueError, match=r"classifier='svm' is not one of logistic, knn"):
        code_features(pca_model, tr.X, tr.y, te.X, te.y, classifier="svm")
    with pytest.raises(ValueError, match=r"LogisticRegression has no encoder \(no transform\)"):
        code_features(LogisticRegression(), tr.X, tr.y, te.X, te.y)


def test_features_command(tmp_path: Path, capsys: pytest.CaptureFixture[str], split: tuple[Any, Any]) -> None:
    run = aekit.LinearAutoencoder(latent_dim=6, verbose=0).fit(split[0].X).save(tmp_path / "lin")
    assert main(["features", str(run), "--data", "digits", "--limit", "100", "--classifier", "knn", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    tr, te = (aekit.load_dataset("digits", split=s, limit=100) for s in ("train", "test"))
    model = aekit.load(run)
    ref = KNeighborsClassifier(5).fit(model.transform(tr.X), tr.y).score(model.transform(te.X), te.y)
    assert res["accuracy"] == ref and res["n_train"] == res["n_test"] == 100 and "raw_accuracy" in res
    np.save(tmp_path / "y.npy", np.zeros(7, np.int64))
    assert main(["features", str(run), "--data", "digits", "--limit", "100", "--labels", str(tmp_path / "y.npy")]) == 2
    err = capsys.readouterr().err
    assert "holds an array of shape (7,), but the data have 100 training and 100 test samples" in err
    assert err.count("\n") == 1


def test_autoencoder_in_a_pipeline_with_grid_search(split: tuple[Any, Any]) -> None:
    tr, _ = split
    pipe = Pipeline([
        ("ae", aekit.Autoencoder(hidden_dims=(16,), max_epochs=1, batch_size=64, random_state=0, verbose=0)),
        ("clf", LogisticRegression(max_iter=300)),
    ])
    search = GridSearchCV(pipe, {"ae__latent_dim": [2, 12]}, cv=2).fit(tr.X.reshape(200, -1), tr.y)
    scores = search.cv_results_["mean_test_score"]
    assert search.best_params_ == {"ae__latent_dim": 12} and scores[1] > scores[0] + 0.1  # more of the digit kept
    assert search.best_estimator_.named_steps["ae"].transform(tr.X[:3].reshape(3, -1)).shape == (3, 12)


def test_finetuned_classifier_trains_the_encoder_and_leaves_the_model_alone(split: tuple[Any, Any]) -> None:
    from aekit.apps.features import FineTunedClassifier, finetune_features

    tr, te = split
    ae = aekit.Autoencoder(latent_dim=8, hidden_dims=(16,), max_epochs=1, batch_size=32, random_state=0,
                           verbose=0).fit(tr.X)
    before = ae.transform(te.X)
    clf = FineTunedClassifier(ae, max_epochs=4, batch_size=32, learning_rate=1e-2, validation_fraction=0.0,
                              patience=None).fit(tr.X, tr.y)
    losses = [row["loss"] for row in clf.history_]
    assert len(losses) == 4 and np.isclose(losses[0], np.log(10), atol=0.1) and losses[-1] < 0.8 * losses[0]
    np.testing.assert_array_equal(ae.transform(te.X), before)  # the model given is copied, not changed
    assert not np.allclose(clf.model_.transform(te.X), before)  # the copy's encoder was trained
    proba = clf.predict_proba(te.X)
    assert proba.shape == (100, 10) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert np.array_equal(clf.predict(te.X), clf.classes_[proba.argmax(1)])
    assert clf.score(te.X, te.y) == np.mean(clf.predict(te.X) == te.y) > 0.5
    res = finetune_features(ae, tr.X, tr.y, te.X, te.y, max_epochs=1, batch_size=64, validation_fraction=0.0,
                            patience=None)
    assert res["classifier"] == "finetune" and res["n_features"] == 8 and res["epochs"] == 1
    # A family with no encoder trained by gradient, labels of the wrong length, a single class.
    lin = aekit.LinearAutoencoder(latent_dim=4, verbose=0).fit(tr.X)
    with pytest.raises(ValueError, match=r"'linear' has no encoder trained by gradient to fine-tune.*autoencoder"):
        finetune_features(lin, tr.X, tr.y, te.X, te.y)
    with pytest.raises(ValueError, match=r"y has shape \(199,\), but X has 200 samples"):
        FineTunedClassifier(ae).fit(tr.X, tr.y[:-1])
    with pytest.raises(ValueError, match=r"y holds a single class"):
        FineTunedClassifier(ae).fit(tr.X, np.zeros(200, np.int64))


def test_finetuned_classifier_trains_a_convolutional_encoder(split: tuple[Any, Any]) -> None:
    from aekit.apps.features import FineTunedClassifier

    tr, te = split
    ae = aekit.Autoencoder(architecture="conv", hidden_dims=(4,), latent_dim=8, max_epochs=1, batch_size=32,
                           random_state=0, verbose=0).fit(tr.X)
    conv_before = ae.module_.encoder.convs[0].weight.detach().clone()
    clf = FineTunedClassifier(ae, max_epochs=3, batch_size=32, learning_rate=1e-2, validation_fraction=0.0,
                              patience=None).fit(tr.X, tr.y)
    losses = [row["loss"] for row in clf.history_]
    assert clf.module_.head.in_features == 8 and losses[-1] < 0.97 * losses[0]
    assert torch.equal(ae.module_.encoder.convs[0].weight, conv_before)  # the model given is not changed
    assert not torch.equal(clf.model_.module_.encoder.convs[0].weight, conv_before)  # its convolutions are trained
    proba = clf.predict_proba(te.X)  # (100, 1, 8, 8) images in
    assert proba.shape == (100, 10) and clf.score(te.X, te.y) == np.mean(clf.classes_[proba.argmax(1)] == te.y)
    # The training step skips the decoder (its loss reads the logits only); evaluation mode reconstructs.
    m, x = clf.module_, torch.from_numpy(np.asarray(te.X[:3], np.float32))
    assert m.train()(x).x_hat.shape == (3, 0)
    out = m.eval()(x)
    torch.testing.assert_close(out.x_hat, m.body.decode(m.encode(x)))
    assert out.x_hat.shape == x.shape and out.extras["class_logits"].shape == (3, 10)


def test_finetuned_classifier_shifts_training_images_only(split: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """translation=N draws random shifts of up to N pixels for every training batch (the augmentation the
    semi-supervised family uses); prediction sees the images as they are; bad values are refused by name."""
    import aekit.apps.features as features
    from aekit.apps.features import FineTunedClassifier

    tr, te = split
    ae = aekit.Autoencoder(architecture="conv", hidden_dims=(4,), latent_dim=8, max_epochs=1, batch_size=32,
                           random_state=0, verbose=0).fit(tr.X)
    calls: list[tuple[tuple[int, ...], int, bool]] = []
    real = features.random_translate

    def recording(x: torch.Tensor, max_shift: int) -> torch.Tensor:
        out = real(x, max_shift)
        calls.append((tuple(x.shape), max_shift, not torch.equal(out, x)))
        return out

    monkeypatch.setattr(features, "random_translate", recording)
    clf = FineTunedClassifier(ae, max_epochs=2, batch_size=50, validation_fraction=0.0, patience=None,
                              translation=1).fit(tr.X, tr.y)
    assert len(calls) == 2 * 4 and {c[:2] for c in calls} == {((50, 1, 8, 8), 1)} and all(c[2] for c in calls)
    calls.clear()
    clf.predict_proba(te.X)
    assert calls == []  # prediction is not augmented
    plain = FineTunedClassifier(ae, max_epochs=1, validation_fraction=0.0, patience=None).fit(tr.X, tr.y)
    assert calls == [] and plain.translation == 0
    for bad, match in ((-1, r"translation=-1: give a whole number of pixels >= 0, e\.g\. 2"),
                       (1.5, r"translation=1\.5: give a whole number"),
                       (4, r"translation=4 pixels is half an image of 8x8 or more; use at most 3")):
        with pytest.raises(ValueError, match=match):
            FineTunedClassifier(ae, translation=bad).fit(tr.X, tr.y)
    flat = aekit.Autoencoder(latent_dim=4, max_epochs=1, verbose=0, random_state=0).fit(tr.X.reshape(200, -1))
    with pytest.raises(ValueError, match=r"translation=2 shifts images, but the samples have shape \(64,\)"):
        FineTunedClassifier(flat, translation=2).fit(tr.X.reshape(200, -1), tr.y)


def test_features_command_finetunes_and_adds_a_report_section(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             split: tuple[Any, Any]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--family", "autoencoder", "--data", "digits", "--latent-dim", "8", "--hidden-dims", "16",
                 "--epochs", "1", "--limit", "150", "--seed", "0", "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()
    # Refused before any work, nothing written: a shift of half an 8x8 image, a shift without --finetune.
    before = sorted(p.name for p in run.iterdir())
    assert main(["features", str(run), "--limit", "150", "--finetune", "--finetune-shift", "4"]) == 2
    err = capsys.readouterr().err
    assert "--finetune-shift 4 pixels is half an image of 8x8 or more; use at most 3" in err
    assert main(["features", str(run), "--limit", "150", "--finetune-shift", "1"]) == 2
    assert "add --finetune, or leave --finetune-shift out" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == before
    assert main(["features", str(run), "--limit", "150", "--finetune", "--finetune-epochs", "2", "--finetune-shift",
                 "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["finetune_epochs"] == 2 and 0.0 <= res["finetune_accuracy"] <= 1.0
    assert (run / "app-features.png").read_bytes()[:4] == b"\x89PNG"
    html = (run / "report.html").read_text()
    assert "Codes as features for a classifier" in html and f"{round(res['finetune_accuracy'], 4)}" in html
    # A family with no encoder trained by gradient: refused before any work, one line, nothing written.
    lin = aekit.LinearAutoencoder(latent_dim=4, verbose=0).fit(split[0].X).save(tmp_path / "lin")
    files = sorted(p.name for p in lin.iterdir())
    assert main(["features", str(lin), "--data", "digits", "--limit", "50", "--finetune"]) == 2
    err = capsys.readouterr().err
    assert "'linear' has no encoder trained by gradient to fine-tune" in err and err.count("\n") == 1
    assert sorted(p.name for p in lin.iterdir()) == files
