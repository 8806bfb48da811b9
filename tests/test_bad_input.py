"""Bad input raises an error that names the value, the rule and the way out; messages are pinned."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import digits_data, family_params, fit_args, make_tiny

import aekit
from aekit.engine.rundir import ModelFileError
from aekit.model.registry import get_family


@cache
def fitted(name: str) -> Any:
    info = get_family(name)
    X = digits_data()
    return make_tiny(info).fit(X, **fit_args(info, X))


def small_ae(**kw: Any) -> aekit.Autoencoder:
    params: dict[str, Any] = {"hidden_dims": (8,), "latent_dim": 3, "max_epochs": 1, "verbose": 0, "random_state": 0}
    params.update(kw)
    return aekit.Autoencoder(**params)


# ------------------------------------------------------------------------------------ data (X)


@pytest.mark.parametrize("name", family_params())
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_values(name: str, bad: float) -> None:
    X = digits_data()
    X[3, 5] = bad
    X[7, 0] = bad
    with pytest.raises(ValueError, match=r"X contains NaN or infinity: 2 values in 2 samples \(first at sample 3\)"):
        make_tiny(get_family(name)).fit(X, **fit_args(get_family(name), X))
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        fitted(name).transform(X)


@pytest.mark.parametrize("name", family_params())
def test_wrong_number_of_features_at_transform(name: str) -> None:
    est = fitted(name)
    with pytest.raises(ValueError, match=r"X has 10 features, but \w+ is expecting 64 features as input"):
        est.transform(np.zeros((4, 10), np.float32))
    with pytest.raises(ValueError, match=r"X has 10 features, but \w+ is expecting 64 features as input"):
        est.reconstruct(np.zeros((4, 10), np.float32))
    with pytest.raises(ValueError, match=r"Z has shape \(4, 999\), but \w+ decodes codes of shape \(n_samples, \d+\)"):
        est.inverse_transform(np.zeros((4, 999), np.float32))


def test_wrong_image_shape_at_transform() -> None:
    est = small_ae().fit(digits_data().reshape(-1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"sample shape \(1, 7, 7\), but Autoencoder was fitted on sample shape \(1, 8, 8\)"):
        est.transform(np.zeros((2, 1, 7, 7), np.float32))


@pytest.mark.parametrize("name", family_params())
def test_empty_data(name: str) -> None:
    est = make_tiny(get_family(name))
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\) \(shape=\(0, 64\)\) while a minimum of 1"):
        est.fit(np.zeros((0, 64), np.float32))
    with pytest.raises(ValueError, match=r"Found array with 0 feature\(s\) \(shape=\(5, 0\)\) while a minimum of 1"):
        est.fit(np.zeros((5, 0), np.float32))


@pytest.mark.parametrize("name", family_params())
def test_one_dimensional_array(name: str) -> None:
    with pytest.raises(ValueError, match=r"got a 1-D array of shape \(64,\)\. Reshape your data either using array"):
        make_tiny(get_family(name)).fit(digits_data()[0])
    with pytest.raises(ValueError, match=r"Reshape your data.*array\.reshape\(1, -1\) if it contains a single sample"):
        fitted(name).transform(digits_data()[0])


def test_non_numeric_and_sparse_data() -> None:
    import scipy.sparse

    with pytest.raises(ValueError, match=r"X must be numeric, got dtype <U1; convert strings"):
        small_ae().fit(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(TypeError, match=r"X must be numeric: .*argument must be a string or a real number"):
        small_ae().fit(np.array([[1.0, {"a": 1}]], dtype=object))
    with pytest.raises(ValueError, match="Complex data not supported"):
        small_ae().fit(np.ones((4, 3), complex))
    with pytest.raises(TypeError, match=r"sparse input is not supported.*X\.toarray\(\)"):
        small_ae().fit(scipy.sparse.csr_matrix(np.eye(4)))
    # Numbers stored as objects are fine.
    small_ae().fit(digits_data().astype(object))


def test_bce_needs_data_in_unit_interval() -> None:
    X = np.random.default_rng(0).standard_normal((50, 6)).astype(np.float32)
    with pytest.raises(ValueError, match=r"loss='bce' \(binary cross-entropy\) needs data in \[0, 1\].*scaling='minmax'"):
        small_ae(loss="bce").fit(X)
    with pytest.raises(ValueError, match=r"output='sigmoid' can only produce values in \(0, 1\).*output='linear'"):
        small_ae(output="sigmoid", loss="mse").fit(X)
    with pytest.raises(ValueError, match=r"loss='bce' needs output='sigmoid', got output='linear'"):
        small_ae(loss="bce", output="linear").fit(digits_data())
    small_ae(loss="bce", scaling="minmax").fit(X)  # the fix the message names works


def test_labels_of_wrong_length() -> None:
    from aekit.data.preprocessing import check_labels

    with pytest.raises(ValueError, match=r"y has shape \(3,\), expected \(5,\) to match X"):
        check_labels(np.arange(3), 5)


# ------------------------------------------------------------------------------ names and params


def test_unknown_family() -> None:
    with pytest.raises(ValueError, match=r"unknown family 'pca'; valid families are: .*autoencoder.*linear"):
        aekit.get_family("pca")


@pytest.mark.parametrize("name", family_params())
def test_unknown_parameter(name: str) -> None:
    cls = get_family(name).estimator
    with pytest.raises(TypeError, match=rf"{cls.__name__} got unknown parameter\(s\) \['n_epochs'\]; valid parameters"):
        cls(n_epochs=3)


@pytest.mark.parametrize("name", family_params())
def test_negative_latent_dim(name: str) -> None:
    info = get_family(name)
    if "latent_dim" not in info.estimator().get_params():
        pytest.skip("this family has no latent_dim")
    X = digits_data()
    for bad in (-1, 0):
        with pytest.raises(ValueError, match=rf"latent_dim must be (a positive integer|an integer >= 1), got {bad}"):
            make_tiny(info, latent_dim=bad).fit(X, **fit_args(info, X))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"activation": "swish"}, r"unknown activation 'swish'; valid: relu, gelu"),
        ({"architecture": "transformer"}, r"unknown architecture 'transformer'; valid: mlp, conv, lecture-conv"),
        ({"output": "softmax"}, r"unknown output 'softmax'; valid: auto, sigmoid"),
        ({"loss": "l1"}, r"unknown loss 'l1'; valid: auto, bce, mse"),
        ({"scaling": "robust"}, r"unknown scaling 'robust'; valid: auto, none, standard"),
        ({"hidden_dims": (8, 0)}, r"hidden_dims must be a tuple of integers >= 1, or 'auto', got \(8, 0\)"),
        ({"max_epochs": 0}, r"max_epochs must be an integer >= 1, got 0"),
        ({"learning_rate": -1.0}, r"learning_rate must be a finite number > 0, got -1.0"),
        ({"lr_schedule": "step"}, r"unknown lr_schedule 'step'; valid: constant, cosine"),
        ({"validation_fraction": 1.0}, r"validation_fraction must be a number in \[0, 1\), got 1.0"),
        ({"device": "tpu"}, r"unknown device 'tpu'; use 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_bad_autoencoder_params(params: dict[str, Any], message: str) -> None:
    est = small_ae(**params)
    with pytest.raises(ValueError, match=message):
        est.fit(digits_data())
    assert not hasattr(est, "module_")


def test_bad_network_for_the_data() -> None:
    with pytest.raises(ValueError, match=r"lecture-conv network is defined for 28x28 .* got sample shape \(1, 8, 8\)"):
        aekit.Autoencoder.from_preset("lecture-conv", max_epochs=1, verbose=0).fit(digits_data().reshape(-1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"tied weights are available for architecture='mlp' only, not 'conv'"):
        small_ae(architecture="conv", tied=True).fit(digits_data().reshape(-1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"convolutional network needs images \(C, H, W\) or signals \(C, L\)"):
        small_ae(architecture="conv").fit(digits_data())


def test_bad_linear_params() -> None:
    X = digits_data()
    with pytest.raises(ValueError, match=r"unknown solver 'lbfgs'; valid: svd, gradient"):
        aekit.LinearAutoencoder(solver="lbfgs").fit(X)
    with pytest.raises(ValueError, match=r"latent_dim=65 must be at most min\(n_samples, n_features\) = 64 with solver='svd'"):
        aekit.LinearAutoencoder(latent_dim=65).fit(X)
    with pytest.raises(ValueError, match=r"unknown scaling 'log'"):
        aekit.LinearAutoencoder(scaling="log").fit(X)


def test_bad_factor_analysis_params() -> None:
    X = digits_data()
    with pytest.raises(ValueError, match=r"max_iter must be an integer >= 1, got 0"):
        aekit.FactorAnalysisAutoencoder(max_iter=0).fit(X)
    with pytest.raises(ValueError, match=r"tol must be a finite number >= 0, got -1"):
        aekit.FactorAnalysisAutoencoder(tol=-1).fit(X)
    with pytest.raises(ValueError, match=r"latent_dim=65 must be at most the number of features \(n_features=64\)"):
        aekit.FactorAnalysisAutoencoder(latent_dim=65).fit(X)


# ------------------------------------------------------------------------------------- run files


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return small_ae().fit(digits_data()).save(tmp_path / "run")


def test_truncated_model_file(run_dir: Path) -> None:
    model = run_dir / "model.safetensors"
    blob = model.read_bytes()
    for cut in (len(blob) // 2, 10, 0):
        model.write_bytes(blob[:cut])
        with pytest.raises(ModelFileError, match=r"model\.safetensors is not a valid safetensors file .*truncated or corrupt"):
            aekit.load(run_dir)


def test_model_file_not_safetensors(run_dir: Path) -> None:
    (run_dir / "model.safetensors").write_bytes(b"\x80\x04\x95pickle, not safetensors" * 10)
    with pytest.raises(ModelFileError, match="not a valid safetensors file"):
        aekit.load(run_dir)


def test_model_file_from_another_config(run_dir: Path, tmp_path: Path) -> None:
    other = small_ae(latent_dim=5).fit(digits_data()).save(tmp_path / "other")
    (run_dir / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(ModelFileError, match=r"does not match config\.json: shape mismatch .*encoder\.V: file \(5, 64\) vs config \(3, 64\)"):
        aekit.load(run_dir)


def test_model_file_of_another_family(run_dir: Path, tmp_path: Path) -> None:
    other = aekit.LinearAutoencoder(latent_dim=3).fit(digits_data()).save(tmp_path / "other")
    (run_dir / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(ModelFileError, match=r"does not match config\.json: missing tensors .*unexpected tensors"):
        aekit.load(run_dir)


def test_config_not_json(run_dir: Path) -> None:
    (run_dir / "config.json").write_text("{family: autoencoder")
    with pytest.raises(ModelFileError, match=r"config\.json is not valid JSON .*the run directory is damaged"):
        aekit.load(run_dir)


def test_config_of_unknown_family_or_params(run_dir: Path) -> None:
    path = run_dir / "config.json"
    cfg = json.loads(path.read_text())
    path.write_text(json.dumps({**cfg, "family": "nope"}))
    with pytest.raises(ModelFileError, match=r"cannot be rebuilt: unknown family 'nope'"):
        aekit.load(run_dir)
    path.write_text(json.dumps({**cfg, "params": {**cfg["params"], "n_epochs": 3}}))
    with pytest.raises(ModelFileError, match=r"cannot be rebuilt: Autoencoder got unknown parameter\(s\) \['n_epochs'\]"):
        aekit.load(run_dir)
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(ModelFileError, match="should hold a JSON object, found list"):
        aekit.load(run_dir)


def test_missing_run_files(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"does not exist; pass the run directory"):
        aekit.load(tmp_path / "nowhere")
    (run_dir / "model.safetensors").unlink()
    with pytest.raises(ModelFileError, match=r"has no model\.safetensors"):
        aekit.load(run_dir)


def test_save_refuses_to_overwrite(run_dir: Path) -> None:
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    other = small_ae(latent_dim=5).fit(digits_data())
    with pytest.raises(FileExistsError, match=r"already holds an aekit run; choose another path, pass overwrite=True"):
        other.save(run_dir)
    after = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    assert after == before
    other.save(run_dir, overwrite=True)
    assert aekit.load(run_dir).transform(digits_data()).shape == (digits_data().shape[0], 5)


def test_save_onto_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    with pytest.raises(ValueError, match=r"exists and is a file; choose a directory path"):
        small_ae().fit(digits_data()).save(target)
    assert target.read_text() == "keep me"


def test_save_with_a_generator_as_random_state(tmp_path: Path) -> None:
    """A RandomState is not a setting JSON can hold: the run is saved with random_state None."""
    est = aekit.LinearAutoencoder(latent_dim=2, random_state=np.random.RandomState(0)).fit(digits_data())
    est.save(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["params"]["random_state"] is None
    np.testing.assert_array_equal(aekit.load(tmp_path / "run").transform(digits_data()), est.transform(digits_data()))


def test_save_writes_the_parameters_of_the_fit_not_later_ones(tmp_path: Path) -> None:
    est = aekit.LinearAutoencoder(latent_dim=2).fit(digits_data())
    est.set_params(scaling=object(), latent_dim=5)  # set after fit: the fitted model is not changed by them
    est.save(tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["params"]["scaling"] == "none" and saved["params"]["latent_dim"] == 2
    np.testing.assert_array_equal(aekit.load(tmp_path / "run").transform(digits_data()), est.transform(digits_data()))


def test_a_parameter_of_the_wrong_type_is_refused_before_fitting() -> None:
    with pytest.raises(ValueError, match=r"unknown scaling <object object at .*>; valid: auto, none, standard"):
        aekit.LinearAutoencoder(latent_dim=2, scaling=object()).fit(digits_data())
