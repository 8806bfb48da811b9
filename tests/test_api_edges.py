"""The Python API at its edges: clones of the applications, resumes on other data, checkpoint folders that hold a
user's files, seeds given as RandomState, and the refusals of helpers that take more than one array."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score

import aekit
from aekit.engine.rundir import FIT_RECORD, DataChangedError, ModelFileError, RunExistsError, RunPathError

TINY = {"hidden_dims": (16,), "latent_dim": 4, "max_epochs": 1, "batch_size": 32, "verbose": 0, "random_state": 0}


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    ds = aekit.load_dataset("digits")
    return ds.X[:240], ds.y[:240]


@pytest.fixture(scope="module")
def fitted(data: tuple[np.ndarray, np.ndarray]) -> aekit.Autoencoder:
    return aekit.Autoencoder(**TINY).fit(data[0])


# ------------------------------------------------------------------------------ applications under clone


def test_a_cloned_detector_keeps_the_fitted_model(data, fitted) -> None:
    X = data[0]
    det = aekit.AnomalyDetector(fitted).fit(X)
    twin = clone(det)
    assert twin.model is fitted  # shared, not an unfitted copy to train with other defaults
    twin.fit(X)
    assert twin.normalize_ == det.normalize_ == "none"
    np.testing.assert_array_equal(twin.score_samples(X), det.score_samples(X))
    # An unfitted model is still cloned (and trained by the clone's fit), as scikit-learn clones it.
    fresh = aekit.Autoencoder(**TINY)
    assert clone(aekit.AnomalyDetector(fresh)).model is not fresh


def test_a_finetuned_classifier_cross_validates(data, fitted) -> None:
    X, y = data
    scores = cross_val_score(aekit.FineTunedClassifier(fitted, max_epochs=1), X, y, cv=2, error_score="raise")
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    assert not hasattr(fitted, "classes_")  # the model given is left alone


def test_finetuning_names_an_unfitted_model_and_predict_before_fit(data) -> None:
    X, y = data
    with pytest.raises(ValueError, match="to fine-tune is not fitted; fit it first"):
        aekit.FineTunedClassifier(aekit.Autoencoder()).fit(X, y)
    with pytest.raises(NotFittedError):
        aekit.FineTunedClassifier(aekit.Autoencoder()).predict(X)


def test_finetuning_takes_a_randomstate_and_leaves_torch_alone(data, fitted) -> None:
    X, y = data
    torch.manual_seed(123)
    before = torch.get_rng_state().clone()
    a = aekit.FineTunedClassifier(fitted, max_epochs=1, random_state=np.random.RandomState(0)).fit(X, y)
    assert torch.equal(before, torch.get_rng_state())
    b = aekit.FineTunedClassifier(fitted, max_epochs=1, random_state=np.random.RandomState(0)).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.n_features_in_ == 64


def test_a_likelihood_that_is_not_finite_is_refused_at_fit(data) -> None:
    X = data[0].copy()
    vae = aekit.VAE(**TINY).fit(X)
    X[3, 0, 0, 0] = 1.01  # outside [0, 1]: probability 0 under the Bernoulli decoder
    with pytest.raises(ValueError, match=r"not finite for 1 of the 240 normal samples \(rows \[3\]\).*clip X"):
        aekit.AnomalyDetector(vae).fit(X)


def test_a_model_that_is_not_an_estimator_is_a_typeerror(data) -> None:
    X = data[0]
    with pytest.raises(TypeError, match="model must be an aekit estimator"):
        aekit.AnomalyDetector("autoencoder").fit(X)
    with pytest.raises(TypeError, match="model must be a fitted aekit estimator with an encoder"):
        aekit.CodeIndex.build(None, X)


# ------------------------------------------------------------------------------ checkpoints of fit()


def test_resume_refuses_other_data_and_another_family(data, tmp_path: Path) -> None:
    X = data[0]
    ckpt = tmp_path / "ckpt"
    aekit.Autoencoder(**{**TINY, "max_epochs": 2}).fit(X, checkpoint_dir=ckpt)
    record = json.loads((ckpt / FIT_RECORD).read_text())
    assert record["family"] == "autoencoder" and record["data"]["n_samples"] == 240
    before = (ckpt / "checkpoint.safetensors").read_bytes()
    with pytest.raises(DataChangedError, match="trained on other data .* allow_data_change=True"):
        aekit.Autoencoder(**{**TINY, "max_epochs": 3}).fit(X.reshape(240, -1) * 0.5, checkpoint_dir=ckpt, resume=True)
    with pytest.raises(ModelFileError, match="written by a fit of 'autoencoder', not 'denoising'"):
        aekit.DenoisingAutoencoder(**{**TINY, "max_epochs": 3}).fit(X, checkpoint_dir=ckpt, resume=True)
    assert (ckpt / "checkpoint.safetensors").read_bytes() == before  # refused before anything was written
    # The same data resumes; other data resumes when asked to, and becomes the recorded data.
    ae = aekit.Autoencoder(**{**TINY, "max_epochs": 3}).fit(X, checkpoint_dir=ckpt, resume=True)
    assert [r["epoch"] for r in ae.history_] == [1, 2, 3]
    aekit.Autoencoder(**{**TINY, "max_epochs": 4}).fit(X[:200], checkpoint_dir=ckpt, resume=True, allow_data_change=True)
    assert json.loads((ckpt / FIT_RECORD).read_text())["data"]["n_samples"] == 200


def test_a_checkpoint_folder_never_takes_a_users_files(data, tmp_path: Path) -> None:
    X = data[0]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "history.csv").write_text("my own data\n")  # named like aekit's file, but not aekit's
    with pytest.raises(RunExistsError, match="holds files aekit did not write \\(history.csv\\)"):
        aekit.Autoencoder(**TINY).fit(X, checkpoint_dir=mine)
    assert (mine / "history.csv").read_text() == "my own data\n" and sorted(p.name for p in mine.iterdir()) == ["history.csv"]
    with pytest.raises(RunPathError, match="exists and is a file"):
        aekit.Autoencoder(**TINY).fit(X, checkpoint_dir=mine / "history.csv")


# ------------------------------------------------------------------------------ seeds and checks


def test_vae_draws_take_a_randomstate_or_none(data) -> None:
    vae = aekit.VAE(**TINY).fit(data[0])
    a = vae.sample(3, random_state=np.random.RandomState(0))
    np.testing.assert_array_equal(a, vae.sample(3, random_state=np.random.RandomState(0)))
    assert vae.elbo(data[0][:2], random_state=None).shape == (2,)
    with pytest.raises(TypeError, match="random_state='x' must be an int, a numpy.random.RandomState or None"):
        vae.sample(2, random_state="x")


def test_semi_supervised_translation_is_checked_against_the_samples(data) -> None:
    X, y = data
    kw = {**TINY, "labelled_batch_size": 8}
    with pytest.raises(ValueError, match="half an image of 8x8 or more; use at most 3"):
        aekit.SemiSupervisedAutoencoder(**kw, translation=7).fit(X, y)
    with pytest.raises(ValueError, match="shifts images, but the samples have shape \\(64,\\)"):
        aekit.SemiSupervisedAutoencoder(**kw, translation=3).fit(X.reshape(len(X), -1), y)


def test_stacked_layer_settings_the_layer_family_lacks_are_refused(data) -> None:
    with pytest.raises(ValueError, match="layer_penalty='foo' has no effect: layer_family='denoising' has no penalty"):
        aekit.StackedAutoencoder(**TINY, layer_penalty="foo").fit(data[0])
    with pytest.raises(ValueError, match="layer_alpha=0.5 has no effect.*\\(contractive, sparse\\)"):
        aekit.StackedAutoencoder(**TINY, layer_alpha=0.5).fit(data[0])


def test_latent_density_refuses_what_it_could_not_sample() -> None:
    Z = np.random.default_rng(0).standard_normal((50, 3))
    Z[:, 1] = 1.0  # a dead unit
    with pytest.raises(ValueError, match="covariance is singular with reg_covar=0"):
        aekit.LatentDensity(reg_covar=0).fit(Z)
    with pytest.raises(ValueError, match="reg_covar must be a finite number >= 0, got inf"):
        aekit.LatentDensity(reg_covar=float("inf")).fit(Z)
    with pytest.raises(NotFittedError):
        aekit.LatentDensity().sample(3)
    assert aekit.LatentDensity().fit(Z).sample(4, random_state=0).shape == (4, 3)


def test_helpers_name_mismatched_arrays(data, fitted, tmp_path: Path) -> None:
    X = data[0]
    with pytest.raises(ValueError, match=r"b has shape \(10,\) \(10 values\), but the model takes samples of shape"):
        aekit.interpolate(fitted, X[0], X[1].ravel()[:10])
    X2 = X.reshape(len(X), -1).astype(np.float64)
    D = np.eye(64)[:16]
    codes = X2 @ D.T
    assert aekit.sparse_coding_objective(X2, D, codes, 0.1).shape == (240,)
    with pytest.raises(ValueError, match="do not fit together.*argument order is X, dictionary, codes"):
        aekit.sparse_coding_objective(X2, codes, D, 0.1)
    with pytest.raises(ValueError, match="do not fit together"):
        aekit.sparse_coding_objective(X2, D, codes[:1], 0.1)
    with pytest.raises(ValueError, match="codes holds NaN"):
        aekit.sparse_coding_objective(X2, D, np.full_like(codes, np.nan), 0.1)
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(ModelFileError, match="notes.txt is a file but not an aekit model"):
        aekit.load(other)
    with pytest.raises(NotFittedError):
        aekit.PredictiveSparseDecomposition(latent_dim=8).sparse_codes(X)


# ------------------------------------------------------------------------------ applications' inputs


def test_compression_refuses_steps_past_float32_values_outside_the_code_range_and_unfit_models(data, fitted) -> None:
    from sklearn.decomposition import PCA

    X = data[0]
    cm = aekit.fit_code_model(fitted, X)
    for kw in ({"step": 1e40}, {"residual_step": 1e40}):
        with pytest.raises(ValueError, match="at most 3.4e\\+38 \\(it is stored as float32\\)"):
            aekit.compress(fitted, X[:3], code_model=cm, **kw)
    with pytest.raises(ValueError, match="outside the range \\[0, 1\\] of the data the code model was fitted to.*0-255"):
        aekit.compress(fitted, (X[:3] * 255).astype(np.uint8), code_model=cm, residual_step=0.05)
    # Inside the range the refinement's bound holds.
    R = aekit.decompress(fitted, aekit.compress(fitted, X[:20], code_model=cm, residual_step=0.05), code_model=cm)
    assert np.abs(R - X[:20]).max() <= 0.025 + 1e-6
    with pytest.raises(NotFittedError):
        aekit.compress(aekit.Autoencoder(), X[:3], code_model=cm)
    with pytest.raises(ValueError, match="PCA cannot compress: compression needs a fitted aekit model"):
        aekit.fit_code_model(PCA(4).fit(X.reshape(len(X), -1)), X.reshape(len(X), -1))
    with pytest.raises(ValueError, match="max_samples must be a positive integer"):
        aekit.fit_code_model(fitted, X, max_samples=0)


def test_restoration_refuses_another_scale_channels_last_and_bad_settings(data, fitted) -> None:
    X = data[0][:4]
    with pytest.raises(ValueError, match="far outside the range .* pixel values 0-255 need dividing by 255"):
        aekit.denoise(fitted, X * 255)
    with pytest.raises(ValueError, match="far outside the range"):
        aekit.inpaint(fitted, (X * 255).astype(np.uint8), "block:3x3")
    noisy = X + 0.3 * np.random.default_rng(0).standard_normal(X.shape).astype(np.float32)
    assert aekit.denoise(fitted, noisy).shape == X.shape  # noise on the input is not another scale
    with pytest.raises(ValueError, match="channels last \\(N, H, W, C\\); pass them as \\(N, C, H, W\\)"):
        aekit.denoise(fitted, X.transpose(0, 2, 3, 1))
    with pytest.raises(ValueError, match="batch_size"):
        aekit.denoise(fitted, X, batch_size=0)
    with pytest.raises(ValueError, match="window must be one of"):
        aekit.denoise(fitted, X, window="x")
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        aekit.denoise(fitted, X, stride=-4)
    with pytest.raises(ValueError, match="fill_value must be a finite number"):
        aekit.inpaint(fitted, X, "block:3", fill_value=float("nan"))


def test_generation_names_an_unfitted_or_foreign_model(data) -> None:
    X = data[0]
    with pytest.raises(NotFittedError):
        aekit.interpolate(aekit.Autoencoder(), X[0], X[1])
    with pytest.raises(TypeError, match="expected a fitted aekit estimator with an encoder and a decoder"):
        aekit.generate(object(), 2, X)


# ------------------------------------------------------------------------------ fits that fail, and resumes


def test_a_refused_or_interrupted_fit_leaves_the_estimator_as_it_was(data, tmp_path: Path) -> None:
    import aekit.engine.training as training

    X = data[0]
    m = aekit.Autoencoder(**{**TINY, "max_epochs": 2}).fit(X)
    codes = m.transform(X[:3])
    m.set_params(latent_dim=6)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunPathError):
        m.fit(X, checkpoint_dir=tmp_path / "afile")
    assert m.resolved_.latent_dim == 4 and np.array_equal(m.transform(X[:3]), codes) and len(m.history_) == 2
    with pytest.raises(ModelFileError, match="no checkpoint to resume from"):
        m.fit(X, checkpoint_dir=tmp_path / "none", resume=True)
    assert np.array_equal(m.transform(X[:3]), codes)

    class Stop(training.Callback):
        def on_step_end(self, state) -> None:
            if state.step == 5:
                raise KeyboardInterrupt

    fresh = aekit.Autoencoder(**TINY)
    fresh._callbacks = lambda: [Stop()]  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        fresh.fit(X)
    assert not any(k.endswith("_") and not k.startswith("_") for k in vars(fresh))
    with pytest.raises(NotFittedError):
        fresh.transform(X[:2])


def test_a_diverged_fit_keeps_the_last_good_weights_with_their_history(data) -> None:
    from aekit.engine.training import TrainingDivergedError

    m = aekit.Autoencoder(**{**TINY, "max_epochs": 3, "init": "random", "learning_rate": 1e8, "output": "linear"})
    with pytest.raises(TrainingDivergedError, match="last good weights of epoch") as info:
        m.fit(data[0])
    import re

    good = int(re.search(r"last good weights of epoch (\d+)", str(info.value)).group(1))  # type: ignore[union-attr]
    assert len(m.history_) == good and np.isfinite(m.transform(data[0][:2])).all()


def test_a_resume_keeps_the_settings_and_the_seed_it_started_with(data, tmp_path: Path) -> None:
    X = data[0]
    kw = {**TINY, "validation_fraction": 0.2, "patience": 5, "init": "random"}
    ckpt = tmp_path / "c"
    aekit.Autoencoder(**{**kw, "max_epochs": 2, "random_state": None}).fit(X, checkpoint_dir=ckpt)
    seed = json.loads((ckpt / FIT_RECORD).read_text())["seed"]
    with pytest.raises(ValueError, match="started with other settings: learning_rate=0.01 \\(was 0.001\\)"):
        aekit.Autoencoder(**{**kw, "max_epochs": 4, "learning_rate": 1e-2}).fit(X, checkpoint_dir=ckpt, resume=True)
    resumed = aekit.Autoencoder(**{**kw, "max_epochs": 3, "random_state": None}).fit(X, checkpoint_dir=ckpt, resume=True)
    straight = aekit.Autoencoder(**{**kw, "max_epochs": 3, "random_state": seed}).fit(X)
    for k, v in straight.module_.state_dict().items():
        assert torch.equal(v, resumed.module_.state_dict()[k]), k
    with pytest.raises(ModelFileError, match="holds 3 trained epochs, more than max_epochs=2; resume with max_epochs=3"):
        aekit.Autoencoder(**{**kw, "max_epochs": 2, "random_state": seed}).fit(X, checkpoint_dir=ckpt, resume=True)


def test_a_checkpoint_folder_is_locked_and_a_flipped_bit_is_found(data, tmp_path: Path) -> None:
    import os
    import socket

    X = data[0]
    ckpt = tmp_path / "c"
    aekit.Autoencoder(**{**TINY, "max_epochs": 2}).fit(X, checkpoint_dir=ckpt)
    lock = ckpt / ".aekit.lock"
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))  # a live process
    with pytest.raises(RunExistsError, match=f"is being written by process {os.getppid()}"):
        aekit.Autoencoder(**{**TINY, "max_epochs": 3}).fit(X, checkpoint_dir=ckpt, resume=True)
    lock.unlink()
    path = ckpt / "checkpoint.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0x10  # a bit of the last tensor's data
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="is corrupt: its CRC-32"):
        aekit.Autoencoder(**{**TINY, "max_epochs": 3}).fit(X, checkpoint_dir=ckpt, resume=True)


def test_more_threads_than_cores_are_capped_with_a_warning(data) -> None:
    from aekit.engine.training import _available_cores

    with pytest.warns(RuntimeWarning, match="threads=512 is more than the"):
        m = aekit.Autoencoder(**{**TINY, "threads": 512}).fit(data[0])
    assert m.history_[0]["threads"] == _available_cores()


def test_figure_text_is_drawn_as_written() -> None:
    from aekit.report.figures import reconstruction_figure

    X = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
    png = reconstruction_figure(X, X, source="price$x^$.npy")  # mathtext would fail to parse this
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------ family methods


def test_a_conditional_vae_scores_with_its_labels_and_names_y(data) -> None:
    X, y = data
    vae = aekit.VAE(**{**TINY, "conditional": True}).fit(X, y)
    assert vae.score(X, y) == pytest.approx(float(vae.elbo(X, y=y).mean()))
    assert vae.score(X) == pytest.approx(float(vae.elbo(X).mean()))
    with pytest.raises(ValueError, match="^y=\\[42\\] is not among the classes"):
        vae.elbo(X[:20], y=np.full(20, 42))
    plain = aekit.VAE(**TINY).fit(X)
    with pytest.raises(ValueError, match="^y=array.* was given, but this VAE is not conditional.*leave y out"):
        plain.elbo(X[:20], y=y[:20])


def test_a_classifier_needs_two_classes_and_one_weight_per_sample(data) -> None:
    X, y = data
    kw = {**TINY, "pretrain_epochs": 1, "objective": "classify"}
    with pytest.raises(ValueError, match="y holds one class \\(7\\)"):
        aekit.StackedAutoencoder(**kw).fit(X, np.full(len(X), 7))
    m = aekit.StackedAutoencoder(**kw).fit(X, y)
    with pytest.raises(ValueError, match="sample_weight has shape \\(5,\\), expected \\(240,\\)"):
        m.score(X, y, sample_weight=np.ones(5))


def test_psd_code_gap_of_all_zero_codes_is_not_a_huge_number(data) -> None:
    p = aekit.PredictiveSparseDecomposition(latent_dim=16, alpha=50.0, max_epochs=1, verbose=0, random_state=0)
    gap = p.fit(data[0].reshape(len(data[0]), -1)).code_gap(data[0].reshape(len(data[0]), -1))
    assert gap["relative_distance"] in (0.0, float("inf")) and np.isnan(gap["support_recall"])
