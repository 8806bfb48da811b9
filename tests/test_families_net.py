"""The network families' shared design: presets as parameter sets, one pure resolve, modules built from
``resolved_``, one ``forward``, the hooks the next families use (encoder head width, family callbacks),
feature names, sample-order invariance, and the flags generated from the declarations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import digits_data, family_params, fit_args, make_tiny
from sklearn.exceptions import NotFittedError
from torch import Tensor, nn

import aekit
from aekit.cli.main import main
from aekit.core.losses import kl_normal_std, reconstruction
from aekit.core.nets import build_encoder_decoder, sigmoid
from aekit.core.outputs import AEOutput, LossOutput
from aekit.data.preprocessing import Scaler
from aekit.engine.rundir import ModelFileError
from aekit.engine.state import TrainState
from aekit.engine.training import Callback, TrainConfig, fit_module
from aekit.families.autoencoder import Autoencoder, AutoencoderModule
from aekit.families.contractive import ContractiveAutoencoderModule
from aekit.families.sparse import SparseAutoencoderModule
from aekit.model.base import DataInfo
from aekit.model.registry import get_family

SMALL = {"hidden_dims": (8,), "latent_dim": 3, "max_epochs": 2, "batch_size": 32, "verbose": 0, "random_state": 0,
         "init": "random"}


# ----------------------------------------------------------------------------------------- presets


def test_preset_is_a_named_parameter_set() -> None:
    ae = aekit.Autoencoder.from_preset("hinton", latent_dim=10)
    assert ae.hidden_dims == (1000, 500, 250) and ae.activation == "gelu"
    assert ae.latent_dim == 10  # an explicit value wins over the preset's
    assert "preset" not in ae.get_params()
    # The preset is the measured recipe (benchmarks/RESULTS.md): PCA start, cosine schedule, all data, fixed budget.
    assert (ae.init, ae.lr_schedule, ae.validation_fraction, ae.patience) == ("pca", "cosine", 0.0, None)
    assert isinstance(ae.max_epochs, int) and ae.batch_size == 128 and ae.learning_rate == 1e-3
    assert aekit.Autoencoder.presets() == ["hinton", "lecture-conv", "hashing"]
    assert aekit.SparseAutoencoder.from_preset("hinton").hidden_dims == (1000, 500, 250)  # subclasses share them
    with pytest.raises(ValueError, match=r"unknown preset 'vgg' for Autoencoder; valid: hinton, lecture-conv, hashing"):
        aekit.Autoencoder.from_preset("vgg")
    # ... except the retrieval preset, which needs the plain autoencoder's binary codes and shifts.
    assert aekit.SparseAutoencoder.presets() == ["hinton", "lecture-conv"]
    with pytest.raises(ValueError, match=r"preset 'hashing' sets binarization, binary_codes, shift_corruption, which "
                                         r"SparseAutoencoder does not have; use aekit.Autoencoder.from_preset\('hashing'\)"):
        aekit.SparseAutoencoder.from_preset("hashing")
    hashing = aekit.Autoencoder.from_preset("hashing", latent_dim=16)
    assert (hashing.architecture, hashing.binary_codes, hashing.shift_corruption) == ("conv", True, 1)
    X = np.random.default_rng(0).random((40, 1, 12, 12), dtype=np.float32)
    bits = hashing.set_params(hidden_dims=(4,), max_epochs=1, verbose=0, random_state=0).fit(X).transform(X)
    assert bits.shape == (40, 16) and set(np.unique(bits)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match=r"unknown preset 'hinton' for LinearAutoencoder; valid: none"):
        aekit.LinearAutoencoder.from_preset("hinton")


def test_cli_preset_fills_flags_and_saves_concrete_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(["train", "--family", "autoencoder", "--preset", "hinton", "--hidden-dims", "16", "--latent-dim", "2",
                 "--epochs", "1", "--seed", "0", "--limit", "60", "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    params = json.loads((out / "config.json").read_text())["params"]
    assert params["activation"] == "gelu"  # from the preset
    assert params["hidden_dims"] == [16] and params["latent_dim"] == 2  # the flags win
    assert "preset" not in params
    code = main(["train", "--family", "autoencoder", "--preset", "vgg", "--out", str(tmp_path / "r2")])
    assert code == 2
    assert "--preset vgg: unknown preset 'vgg' for Autoencoder; valid: hinton, lecture-conv" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------- resolve


def test_resolve_is_pure_and_decides_from_the_data() -> None:
    params = aekit.Autoencoder().get_params()
    frozen = dict(params)
    digits = DataInfo.of(digits_data())
    r = aekit.Autoencoder.resolve(params, digits)
    assert params == frozen  # the parameters are not changed
    # The default MLP starts at PCA: PCA's objective and scaling, the output clipped to the data's [0, 1]; widths
    # from the input size.
    assert (r["init"], r["hidden_dims"], r["scaling"], r["output"], r["loss"]) == ("pca", (128, 64), "none", "clip", "mse")
    assert aekit.Autoencoder.resolve({**params, "sample_norm": "l2"}, digits)["output"] == "linear"  # directions
    assert aekit.Autoencoder.resolve({**params, "output": "linear"}, digits)["output"] == "linear"
    r = aekit.Autoencoder.resolve({**params, "init": "random"}, digits)
    assert (r["hidden_dims"], r["scaling"], r["output"], r["loss"]) == ((128, 64), "none", "sigmoid", "bce")
    gauss = DataInfo.of(np.random.default_rng(0).standard_normal((50, 6)).astype(np.float32))
    r = aekit.Autoencoder.resolve({**params, "init": "random"}, gauss)
    assert (r["scaling"], r["output"], r["loss"]) == ("standard", "linear", "mse")
    r = aekit.Autoencoder.resolve({**params, "latent_dim": 3}, gauss)  # PCA's start outside [0, 1]: not clipped
    assert (r["init"], r["scaling"], r["output"], r["loss"]) == ("pca", "none", "linear", "mse")
    conv = aekit.Autoencoder.resolve({**params, "architecture": "conv"}, DataInfo.of(digits_data().reshape(-1, 1, 8, 8)))
    assert conv["hidden_dims"] == (32, 64)
    sparse = aekit.SparseAutoencoder.resolve({**aekit.SparseAutoencoder().get_params(), "penalty": "kl"}, digits)
    assert (sparse["hidden_dims"], sparse["alpha"], sparse["k"], sparse["code_activation"]) == ((), 3.0, 8, "sigmoid")
    cae = aekit.ContractiveAutoencoder.resolve(aekit.ContractiveAutoencoder().get_params(), digits)
    assert cae["jacobian"] == "exact"


def test_standardized_range_is_that_of_the_scaled_data() -> None:
    X = np.random.default_rng(1).gamma(2.0, 3.0, (40, 5)).astype(np.float32)
    X[:, 2] = 7.0  # a constant feature is left unscaled
    info = DataInfo.of(X)
    Xs = Scaler.fit("standard", X).transform(X)
    assert info.scaled_range("standard") == pytest.approx((float(Xs.min()), float(Xs.max())), abs=1e-6)
    assert DataInfo.from_json(json.loads(json.dumps(info.to_json()))) == info


def test_fitted_model_ignores_later_set_params() -> None:
    X = digits_data()
    ae = aekit.Autoencoder(**SMALL).fit(X)
    Z = ae.transform(X)
    ae.set_params(latent_dim=5, output="linear", loss="mse", hidden_dims=(4, 4))
    assert ae.resolved_.latent_dim == 3 and ae.resolved_.output == "sigmoid"
    np.testing.assert_array_equal(ae.transform(X), Z)
    assert ae.get_feature_names_out().tolist() == ["autoencoder0", "autoencoder1", "autoencoder2"]


def test_saved_config_without_a_resolved_output_is_refused(tmp_path: Path) -> None:
    ae = aekit.Autoencoder(**SMALL).fit(digits_data())
    run = ae.save(tmp_path / "run")
    cfg = json.loads((run / "config.json").read_text())
    del cfg["resolved"]["output"]
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match=r"cannot be rebuilt: unknown output 'auto'; valid: sigmoid"):
        aekit.load(run)


# ------------------------------------------------------------------------------------ one forward


@pytest.mark.parametrize("cls", [SparseAutoencoderModule, ContractiveAutoencoderModule])
def test_variants_override_encode_and_loss_only(cls: type) -> None:
    assert "forward" not in vars(cls) and "decode" not in vars(cls)
    assert "encode" in vars(cls) and "loss" in vars(cls)


def test_contractive_penalty_is_taken_at_the_input_the_encoder_saw() -> None:
    torch.manual_seed(0)
    encoder, decoder = build_encoder_decoder((6,), "mlp", (), 4, "relu")
    module = ContractiveAutoencoderModule(
        encoder, decoder, "linear", "mse", alpha=1.0, jacobian="autograd", n_projections=1, code_activation="sigmoid"
    )
    x = torch.rand(5, 6)
    noisy = x + torch.randn(5, 6)
    out = module(noisy)
    assert out.x_in is noisy
    pen = module.loss(x, out).terms["contractive"]
    torch.testing.assert_close(pen, module.jacobian_norm(noisy).mean())
    assert not torch.allclose(pen, module.jacobian_norm(x).mean())


# ---------------------------------------------------------------------------------------- hooks


class GaussianModule(AutoencoderModule):
    """A tiny Gaussian encoder on the head hook: the head's 2K outputs are a mean and a log-variance."""

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x).chunk(2, dim=1)[0]  # the mean, (B, K)

    def forward(self, x: Tensor) -> AEOutput:
        mu, logvar = self.encoder(x).chunk(2, dim=1)  # (B, K) each
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        raw = self.decoder(z)
        return AEOutput(z=z, x_hat=raw, mu=mu, logvar=logvar, x_in=x)

    def loss(self, x: Tensor, out: AEOutput) -> LossOutput:
        assert out.mu is not None and out.logvar is not None
        rec = reconstruction("mse", x, out.x_hat, None).mean()
        kl = kl_normal_std(out.mu, out.logvar).mean()
        return LossOutput(rec + kl, {"reconstruction": rec, "kl": kl})


@pytest.mark.parametrize(("architecture", "shape"), [("mlp", (64,)), ("conv", (1, 8, 8))])
def test_encoder_head_of_another_width_than_the_code(architecture: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    K = 3
    encoder, decoder = build_encoder_decoder(shape, architecture, (8,), K, "relu", head_dim=2 * K)
    x = torch.rand(10, *shape)
    assert encoder(x).shape == (10, 2 * K)
    assert decoder(torch.zeros(10, K)).shape == (10, *shape)
    module = GaussianModule(encoder, decoder, "linear", "mse")
    X = digits_data()[:60].reshape(-1, *shape)
    history = fit_module(module, X, config=TrainConfig(max_epochs=3, batch_size=20, verbose=0, device="cpu"), seed=0)
    assert {"reconstruction", "kl"} <= history[-1].keys() and history[-1]["kl"] > 0
    assert history[-1]["loss"] < history[0]["loss"]
    with pytest.raises(ValueError, match=r"tied weights need head_dim == latent_dim, got head_dim=6, latent_dim=3"):
        build_encoder_decoder(shape, "mlp", (8,), K, "relu", tied=True, head_dim=2 * K)


class EpochRecorder(Callback):
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_epoch_end(self, state: TrainState) -> None:
        self.epochs.append(int(state.epoch))


class RecordingAutoencoder(Autoencoder):
    """An estimator that contributes a callback to its own fit, as a family with a loss weight schedule would."""

    def _callbacks(self) -> list[Callback]:
        self.recorder_ = EpochRecorder()
        return [self.recorder_]


def test_family_callbacks_reach_the_training_loop() -> None:
    est = RecordingAutoencoder(**{**SMALL, "max_epochs": 3, "validation_fraction": 0.0}).fit(digits_data())
    assert est.recorder_.epochs == [1, 2, 3] == [int(row["epoch"]) for row in est.history_]


# ------------------------------------------------------------------------------- feature names


@pytest.mark.parametrize("name", family_params())
def test_feature_names_follow_the_class_name_prefix(name: str) -> None:
    info = get_family(name)
    est = make_tiny(info)
    with pytest.raises(NotFittedError, match="not fitted"):
        est.get_feature_names_out()
    X = digits_data()
    est.fit(X, **fit_args(info, X))
    names = est.get_feature_names_out()
    k = est.transform(X[:2]).shape[1]
    prefix = type(est).__name__.lower()
    assert names.tolist() == [f"{prefix}{i}" for i in range(k)]


def test_set_output_pandas() -> None:
    pd = pytest.importorskip("pandas", reason="pandas is not installed; set_output(transform='pandas') needs it")
    X = digits_data()
    ae = aekit.Autoencoder(**SMALL).set_output(transform="pandas").fit(X)
    frame = ae.transform(pd.DataFrame(X))
    assert list(frame.columns) == ["autoencoder0", "autoencoder1", "autoencoder2"]


# ---------------------------------------------------------------------------- order invariance


@pytest.mark.parametrize("seed", range(4))
def test_sigmoid_codes_do_not_depend_on_the_row_order(seed: int) -> None:
    """The failure scikit-learn's sample-order check saw: torch.sigmoid rounds a tensor's tail differently."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (23, 5)).astype(np.float32)
    cae = aekit.ContractiveAutoencoder(latent_dim=3, max_epochs=1, batch_size=8, verbose=0, random_state=seed).fit(X)
    perm = rng.permutation(len(X))
    np.testing.assert_array_equal(cae.transform(X[perm]), cae.transform(X)[perm])
    np.testing.assert_array_equal(cae.score_samples(X[perm]), cae.score_samples(X)[perm])
    a = torch.from_numpy(rng.standard_normal((37, 3)).astype(np.float32))
    p = torch.from_numpy(perm[:23].copy())
    assert torch.equal(sigmoid(a[p]), sigmoid(a)[p])
    torch.testing.assert_close(sigmoid(a), torch.sigmoid(a), rtol=0, atol=1.2e-7)


# -------------------------------------------------------------------------------- flags and epochs


def help_text(capsys: pytest.CaptureFixture[str], family: str) -> str:
    try:
        main(["train", "--family", family, "--help"])
    except SystemExit as exc:  # argparse's help exits 0
        assert exc.code in (0, None)
    return " ".join(capsys.readouterr().out.split())


def test_help_shows_declared_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys, "sparse")
    assert "--hidden-dims INT,INT,... Widths of the MLP's hidden layers" in text
    assert "(default: ())" in text
    assert "--penalty {l1,kl,topk}" in text
    assert "(default: from the data (sigmoid for data in [0, 1] unless loss='mse', else linear))" in text
    assert "(default: auto (0.1 for l1, 3 for kl))" in text
    assert "--lr-schedule {constant,cosine} \"cosine\" decays the rate to 0 over max_epochs" in text  # a whole phrase
    assert "None accepted" not in text and "default: None" not in text
    assert "--epochs N maximum number of passes of the training loop over the data (max_epochs, default: 50)" in text
    assert "--preset NAME" in text and "(hinton, lecture-conv)" in text
    assert "--hidden-dims INT,INT,... Widths" in help_text(capsys, "autoencoder")
    assert "(default: auto ((256, 128) for mlp, channels (32, 64) for conv))" in help_text(capsys, "autoencoder")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--family", "factor-analysis"], "family 'factor-analysis' is not trained by epochs; its iterations are set by max_iter"),
        (["--family", "linear"], "--solver svd computes the PCA optimum in closed form, without epochs"),
    ],
)
def test_epochs_refused_where_it_does_not_apply(
    args: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", *args, "--epochs", "3", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("aekit: error: --epochs does not apply: ") and needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_epochs_reported_by_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--family", "stacked", "--hidden-dims", "8", "--latent-dim", "2", "--pretrain-epochs", "2",
                 "--epochs", "1", "--seed", "0", "--limit", "60", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert ("trained 2 epochs of pretraining of layer 1, 2 epochs of pretraining of layer 2, 1 epoch of fine-tuning"
            in err), err
    code = main(["train", "--family", "linear", "--solver", "gradient", "--latent-dim", "2", "--epochs", "2",
                 "--seed", "0", "--limit", "60", "--out", str(tmp_path / "lin")])
    err = capsys.readouterr().err
    assert code == 0 and "aekit: trained 2 epochs in" in err, err


def test_toml_values_parsed_and_checked_like_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('family = "sparse"\nhidden_dims = "8,4"\nk = "auto"\nalpha = 0.5\n')
    code = main(["train", "--config", str(toml), "--latent-dim", "4", "--epochs", "1", "--seed", "0", "--limit", "60",
                 "--quiet", "--out", str(tmp_path / "r")])
    assert code == 0, capsys.readouterr().err
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["params"]["hidden_dims"] == [8, 4] and cfg["resolved"]["k"] == 1
    toml.write_text('family = "sparse"\nhidden_dims = "8,x"\n')
    code = main(["train", "--config", str(toml), "--out", str(tmp_path / "r2")])
    assert code == 2
    assert "hidden_dims: expected a tuple of integers >= 1, or 'auto'" in capsys.readouterr().err


def test_modules_refuse_an_unknown_output() -> None:
    encoder, decoder = build_encoder_decoder((4,), "mlp", (), 2, "relu")
    with pytest.raises(ValueError, match=r"loss='bce' needs output='sigmoid', got output='linear'"):
        AutoencoderModule(encoder, decoder, "linear", "bce")
    assert isinstance(AutoencoderModule(encoder, decoder, "tanh", "mse").decoder, nn.Module)


@pytest.mark.parametrize("kernel", [3, 5])
def test_strided_stack_sizes_and_their_mirror(kernel: int) -> None:
    """Each stride-2 layer gives ceil(n / 2) per side, and the transposed layer with mirror_padding gives n back."""
    from aekit.core.nets import mirror_padding, strided_stack

    for shape in [(1, 28, 28), (3, 7, 10), (2, 1, 5), (4, 33)]:
        layers, shapes, c = strided_stack(shape, (5, 6), kernel, lambda ch: nn.Identity())
        x = torch.zeros(1, *shape)
        sizes = [tuple(x.shape[2:])]
        for layer in layers:
            x = layer(x)
            if not isinstance(layer, nn.Identity):
                sizes.append(tuple(x.shape[2:]))
        assert shapes == sizes and c == 6 and x.shape[1] == 6
        assert shapes[1] == tuple(-(-s // 2) for s in shape[1:])
        convt = nn.ConvTranspose2d if len(shape) == 3 else nn.ConvTranspose1d
        for before, after in zip(shapes[:-1], shapes[1:]):
            up = convt(1, 1, kernel, stride=2, padding=kernel // 2, output_padding=mirror_padding(before))
            assert tuple(up(torch.zeros(1, 1, *after)).shape[2:]) == before


def test_a_samples_outputs_do_not_depend_on_the_batch_it_comes_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inference runs in passes of a fixed number of rows, so row counts never change a matrix kernel's rounding."""
    from aekit.model import base
    from aekit.model.base import INFERENCE_ROWS, inference_rows, pad_rows

    rng = np.random.default_rng(0)
    n = INFERENCE_ROWS + 44  # two passes, the second padded
    X = rng.uniform(0, 1, (n, 784)).astype(np.float32)
    ae = aekit.Autoencoder(hidden_dims=(256,), latent_dim=32, max_epochs=1, verbose=0, random_state=0).fit(X)
    Z, R = ae.transform(X), ae.reconstruct(X)
    for i in (0, INFERENCE_ROWS - 1, INFERENCE_ROWS, n - 1):
        np.testing.assert_array_equal(ae.transform(X[i : i + 1])[0], Z[i])
        np.testing.assert_array_equal(ae.reconstruct(X[i : i + 3])[0], R[i])
    np.testing.assert_array_equal(ae.inverse_transform(Z[7:8])[0], ae.inverse_transform(Z)[7])
    # Large samples get fewer rows a pass (never fewer than one), the same for every pass of a model.
    assert inference_rows((784,)) == INFERENCE_ROWS and inference_rows((3, 32, 32)) == INFERENCE_ROWS
    assert inference_rows((3, 512, 512)) == 5 and inference_rows((1, 4096, 4096)) == 1
    monkeypatch.setattr(base, "INFERENCE_BUDGET", 3 * 784)  # three rows a pass for this model
    assert inference_rows(ae.sample_shape_) == 3
    Z3, R3 = ae.transform(X), ae.reconstruct(X)
    np.testing.assert_array_equal(ae.transform(X[:10]), Z3[:10])
    np.testing.assert_array_equal(ae.reconstruct(X[4:5]), R3[4:5])
    # Padding repeats the last row, for arrays and tensors, and leaves a full block as it is.
    a = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(pad_rows(a, 5), [[0, 1], [2, 3], [4, 5], [4, 5], [4, 5]])
    assert pad_rows(a, 3) is a
    assert torch.equal(pad_rows(torch.from_numpy(a), 4), torch.from_numpy(pad_rows(a, 4)))
