"""Stacked autoencoder: greedy layer-wise pretraining of shallow autoencoders, then fine-tuning.

Y. Bengio, P. Lamblin, D. Popovici and H. Larochelle, "Greedy layer-wise training of deep networks",
NIPS 19 (2007); G. E. Hinton and R. R. Salakhutdinov, "Reducing the dimensionality of data with
neural networks", Science 313 (2006); P. Vincent, H. Larochelle, I. Lajoie, Y. Bengio and
P.-A. Manzagol, "Stacked denoising autoencoders: learning useful representations in a deep network
with a local denoising criterion", JMLR 11 (2010).

With widths d_0 = D (the data), d_1, ..., d_L (``hidden_dims`` then ``latent_dim``), layer l is a
shallow autoencoder with encoder f_l(h) = s(W_l h + b_l) and decoder g_l(h) = o_l(W'_l h + c_l),
trained greedily, one layer after the other, on the codes of the layer below (h_0 = x, and
h_l = f_l(h_{l-1}) with f_l frozen once trained)::

    pretraining, l = 1, ..., L:    min_{f_l, g_l}  (1/N) sum_n  J_l(h_{l-1,n})

where J_l is the objective of the layer's family (``layer_family``), each taken from that family's
own module: the reconstruction L(h, g_l(f_l(h))) ("autoencoder"); its expectation under a corruption
h' ~ q(h'|h) fed to the encoder ("denoising", Vincent et al.); plus alpha * Omega(f_l(h)) ("sparse")
or alpha * ||df_l(h)/dh||_F^2 ("contractive"). L is the Bernoulli negative log-likelihood when the
layer's input lies in [0, 1] (the data, or sigmoid codes) and the squared error otherwise.

The unrolled deep network F = f_L o ... o f_1 (encoder) and G = g_1 o ... o g_L (decoder, the
layers' decoders in reverse order) starts from the pretrained weights and is fine-tuned end to end
(``objective``)::

    "reconstruct":  min_{F, G}  (1/N) sum_n  L(x_n, G(F(x_n)))
    "classify":     min_{F, V, c}  -(1/|S|) sum_{n in S}  log softmax(V F(x_n) + c)_{y_n}

with S the labelled samples (y_n != -1). In "classify" the decoder keeps its pretrained weights (the
encoder and a linear softmax head on the top code are trained, as in Bengio et al. and Vincent et
al.). The penalties and the corruption belong to pretraining only. ``pretrain_epochs=0`` skips the
pretraining (the randomly initialized baseline these papers compare against); ``objective="none"``
skips the fine-tuning (the frozen pretrained features of Vincent et al., sec. 7).
"""

from __future__ import annotations

import math
import numbers
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.metaestimators import available_if
from torch import Tensor, nn

from aekit.core.losses import reconstruction
from aekit.core.nets import Activation, Flatten, TiedDecoder, Unflatten, activation, apply_output
from aekit.core.outputs import AEOutput, LossOutput
from aekit.core.params import Explain, Interval
from aekit.data.corruption import Corruption, make_corruption
from aekit.engine.rundir import CHECKPOINT_FILE, ModelFileError
from aekit.engine.training import TrainConfig, fit_module
from aekit.families.autoencoder import Autoencoder, AutoencoderConfig, AutoencoderModule
from aekit.families.contractive import ContractiveAutoencoderModule, ContractiveConfig, jacobian_method
from aekit.families.sparse import DEFAULT_ALPHA, PENALTIES, SparseAutoencoderModule, SparseConfig
from aekit.model.base import Epochs, _labels, declare_params
from aekit.model.registry import register

OBJECTIVES = ("auto", "reconstruct", "classify", "none")
#: label that marks an unlabelled sample in ``y``
UNLABELLED = -1


@dataclass
class StackedNetConfig(AutoencoderConfig):
    """The network of the stack: the autoencoder's, with logistic units."""

    activation: Activation = "sigmoid"  # The logistic units of all three papers (Hinton, Bengio, Vincent).


@dataclass
class StackedConfig:
    """Hyperparameters of the greedy pretraining and of the fine-tuning."""

    # Vincent et al. (2010): stacked denoising autoencoders beat stacked plain ones on every task.
    layer_family: str = "denoising"  # the shallow autoencoder of each layer: autoencoder, denoising, sparse or contractive
    # Epochs of greedy training per layer; 0 skips pretraining (random initialization)
    pretrain_epochs: Annotated[int, Interval(0), Explain("epochs of greedy training per layer", "use 0 to skip the pretraining")] = 10
    objective: str = "reconstruct"  # fine-tuning: "reconstruct", "classify" (needs y), "auto" (classify when y has labels) or "none"
    layer_corruption: str = "masking:0.25"  # q(h'|h) of denoising layers; Vincent et al. find masking noise near 0.25 robust
    layer_penalty: str | None = None  # sparse layers: "l1", "kl" or "topk"; None: kl for sigmoid units (Ng), else l1
    # Weight of the sparse or contractive layers' penalty; None: that family's default
    layer_alpha: Annotated[float, Interval(0), Explain("the weight of the layers' penalty", "use None for the family's default")] | None = None


# ------------------------------------------------------------------------------------------ layers


@dataclass(frozen=True)
class LayerSpec:
    """Shape and units of one shallow autoencoder of the stack."""

    in_shape: tuple[int, ...]  # (D,) codes of the layer below, or the data's sample shape for the first layer
    out_dim: int  # code size d_l
    act: str  # code non-linearity s
    tied: bool  # W'_l = W_l^T
    output: str  # output non-linearity o_l, matched to the range of the layer's input
    loss: str  # "bce" or "mse"


def _encoder_decoder(spec: LayerSpec, act_in_encoder: bool) -> tuple[nn.Sequential, nn.Sequential]:
    """One linear encoder layer (with the code non-linearity when ``act_in_encoder``) and its decoder.

    The first layer reads samples of the data's shape, so corruptions that need images (block
    occlusion) can act on it; the layers above read flat codes.
    """
    flat = len(spec.in_shape) == 1
    d_in = math.prod(spec.in_shape)
    enc: list[nn.Module] = [] if flat else [Flatten()]  # (B, *in_shape) -> (B, d_in)
    enc.append(nn.Linear(d_in, spec.out_dim))
    if act_in_encoder:
        enc.append(activation(spec.act))
    encoder = nn.Sequential(*enc)
    dec: nn.Module = TiedDecoder(encoder, spec.act) if spec.tied else nn.Linear(spec.out_dim, d_in)
    decoder = nn.Sequential(dec) if flat else nn.Sequential(dec, Unflatten(spec.in_shape))
    return encoder, decoder


def _plain_layer(spec: LayerSpec, opts: dict[str, Any]) -> AutoencoderModule:
    # The same module serves "autoencoder" and "denoising": the corruption is the training loop's.
    encoder, decoder = _encoder_decoder(spec, act_in_encoder=True)
    return AutoencoderModule(encoder, decoder, spec.output, spec.loss)


def _sparse_layer(spec: LayerSpec, opts: dict[str, Any]) -> AutoencoderModule:
    encoder, decoder = _encoder_decoder(spec, act_in_encoder=False)
    return SparseAutoencoderModule(
        encoder, decoder, spec.output, spec.loss, penalty=opts["penalty"], alpha=opts["alpha"], rho=SparseConfig.rho,
        k=max(1, spec.out_dim // 4), code_activation=spec.act, sample_shape=spec.in_shape,
    )


def _contractive_layer(spec: LayerSpec, opts: dict[str, Any]) -> AutoencoderModule:
    encoder, decoder = _encoder_decoder(spec, act_in_encoder=False)
    # The contractive family's own rule: the closed form for one sigmoid layer, else by the code size.
    jacobian = jacobian_method("auto", spec.act == "sigmoid", spec.out_dim)
    return ContractiveAutoencoderModule(
        encoder, decoder, spec.output, spec.loss, alpha=opts["alpha"], jacobian=jacobian, n_projections=1,
        code_activation=spec.act,
    )


#: layer_family -> builder of one shallow autoencoder module of that family
LAYER_FAMILIES: dict[str, Callable[[LayerSpec, dict[str, Any]], AutoencoderModule]] = {
    "autoencoder": _plain_layer,
    "denoising": _plain_layer,
    "sparse": _sparse_layer,
    "contractive": _contractive_layer,
}


def code_output(act: str) -> tuple[str, str]:
    """Output non-linearity and loss of a layer that reconstructs codes of ``act`` units.

    Sigmoid codes lie in (0, 1), so the layer above reconstructs them with a sigmoid and the
    cross-entropy, as Vincent et al. do; tanh codes with a tanh; any other codes linearly.
    """
    if act == "sigmoid":
        return "sigmoid", "bce"
    if act == "tanh":
        return "tanh", "mse"
    return "linear", "mse"


class StackedAutoencoderModule(nn.Module):
    """The unrolled stack: encoders f_1..f_L, decoders g_L..g_1, and an optional softmax head.

    The layers are the shallow autoencoder modules themselves, so the parameters the unrolled network
    starts from are the pretrained ones by construction, under the same names whether pretrained or
    not (``layers.{l}.encoder...``, ``layers.{l}.decoder...``, ``head...``). Shapes: x (B, *sample_shape),
    z (B, d_L), class logits (B, n_classes).
    """

    def __init__(self, layers: Sequence[AutoencoderModule], code_dim: int, n_classes: int | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.output, self.loss_kind = layers[0].output, layers[0].loss_kind
        self.head = nn.Linear(code_dim, n_classes) if n_classes is not None else None
        # fit_module passes the labels to ``loss`` only when this is set.
        self.uses_labels = n_classes is not None

    @property
    def stack(self) -> Sequence[AutoencoderModule]:
        """The shallow autoencoders, the first nearest the data."""
        return cast("Sequence[AutoencoderModule]", self.layers)

    def encode(self, x: Tensor) -> Tensor:
        """(B, *sample_shape) -> (B, d_L): f_L(...f_1(x))."""
        h = x
        for layer in self.stack:
            h = layer.encode(h)
        return h

    def decode(self, z: Tensor) -> Tensor:
        """(B, d_L) -> (B, *sample_shape), in data space: g_1(...g_L(z))."""
        h = z
        for layer in reversed(self.stack):
            h = layer.decode(h)
        return h

    def _decode_raw(self, z: Tensor) -> Tensor:
        """The first layer's decoder output before its output non-linearity (logits for a sigmoid)."""
        h = z
        for layer in reversed(self.stack[1:]):
            h = layer.decode(h)
        return self.stack[0].decoder(h)

    def class_logits(self, z: Tensor) -> Tensor:
        """(B, d_L) -> (B, n_classes)."""
        if self.head is None:
            raise RuntimeError("this stack has no classifier head; it was fitted without labels")
        return self.head(z)

    def forward(self, x: Tensor) -> AEOutput:
        z = self.encode(x)
        if self.head is not None:
            # The decoder is frozen while the classifier is fine-tuned: the reconstruction keeps
            # forward's contract without building a graph.
            with torch.no_grad():
                x_hat = self.decode(z)
            return AEOutput(z=z, x_hat=x_hat, extras={"class_logits": self.head(z)})
        raw = self._decode_raw(z)
        return AEOutput(z=z, x_hat=apply_output(self.output, raw), logits=raw if self.output == "sigmoid" else None)

    def loss(self, x: Tensor, out: AEOutput, y: Tensor | None = None) -> LossOutput:
        if self.head is None:
            rec = reconstruction(self.loss_kind, x, out.x_hat, out.logits).mean()
            return LossOutput(rec, {"reconstruction": rec})
        if y is None:
            raise ValueError("the classifier head is trained from labels; pass y")
        # Mean cross-entropy over the labelled samples of the batch; a batch without any gives 0.
        n_labelled = (y != UNLABELLED).sum().clamp(min=1)
        ce = F.cross_entropy(out.extras["class_logits"], y, ignore_index=UNLABELLED, reduction="sum") / n_labelled
        return LossOutput(ce, {"cross_entropy": ce})


def _prepare_layer(layer: nn.Module, H: np.ndarray) -> None:
    """Data-dependent initialization of a layer from its input ``H``, as its family's estimator does."""
    if isinstance(layer, SparseAutoencoderModule):
        layer.prepare(H)


@torch.no_grad()
def _codes(layer: AutoencoderModule, H: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """The codes f_l(H) of a trained layer, (N, d_l) float32, the training data of the layer above."""
    layer.eval()
    dev = next(layer.parameters()).device
    out = [layer.encode(torch.from_numpy(H[i : i + batch_size]).to(dev)).cpu().numpy() for i in range(0, H.shape[0], batch_size)]
    return np.concatenate(out).astype(np.float32, copy=False)


def _label_array(y: Any, n: int) -> np.ndarray:
    """``y`` checked against ``n`` samples, as int64 class labels."""
    arr = _labels(y, n)
    if arr is None:
        raise ValueError("class labels y are needed here, got None")
    return _int_labels(arr)


def _int_labels(y: np.ndarray) -> np.ndarray:
    """``y`` as int64 class labels; booleans and integral floats are accepted, anything else is an error."""
    arr = np.asarray(y)
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            pass
    if arr.dtype.kind in "biu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.isfinite(arr).all() and np.array_equal(arr, np.round(arr)):
        return arr.astype(np.int64)
    bad = arr.ravel()[:3].tolist() if arr.dtype.kind == "f" else str(arr.dtype)
    raise ValueError(
        f"y must hold integer class labels ({UNLABELLED} marks an unlabelled sample), got {bad}; encode the classes "
        "as integers, e.g. with sklearn.preprocessing.LabelEncoder, or use objective='reconstruct' to ignore y"
    )


# --------------------------------------------------------------------------------------- estimator


@register(
    "stacked",
    "greedy layer-wise pretraining of shallow autoencoders (plain, denoising, sparse, contractive), then fine-tuning "
    "of the unrolled deep net or of a classifier head",
    capabilities=("gradient", "images", "labels"),
)
@declare_params(StackedNetConfig, StackedConfig, TrainConfig)
class StackedAutoencoder(Autoencoder):
    """Stacked autoencoder, scikit-learn style.

    Each layer of ``hidden_dims + (latent_dim,)`` is first trained as a shallow autoencoder of
    ``layer_family`` on the codes of the layer below, for ``pretrain_epochs`` epochs; then the unrolled
    network is fine-tuned for ``max_epochs`` epochs, to reconstruct the data or, given labels, to
    classify them with a softmax layer on the top code.

    Parameters
    ----------
    layer_family : {"autoencoder", "denoising", "sparse", "contractive"}, default "denoising"
        The shallow autoencoder trained at each layer (the module of that family, one linear layer
        each way). "denoising" gives Vincent et al.'s stacked denoising autoencoder.
    pretrain_epochs : int >= 0, default 10
        Epochs of greedy training per layer; 0 skips pretraining (the random-initialization baseline).
    objective : {"reconstruct", "classify", "auto", "none"}, default "reconstruct"
        Fine-tuning objective. "reconstruct": the reconstruction of the data through the unrolled
        network. "classify": cross-entropy of a linear softmax head on the top code, trained with the
        encoder on the labelled samples of ``y`` (-1 marks an unlabelled sample, used by pretraining
        only); the decoder keeps its pretrained weights. "auto": "classify" when ``fit`` gets ``y``
        with at least one label, else "reconstruct". "none": no fine-tuning (``y`` is ignored). The
        default ignores ``y``, as a transformer in a scikit-learn pipeline must (a pipeline passes the
        labels of the final classifier to every step).
    layer_corruption : str, default "masking:0.25"
        Corruption q(h'|h) of each denoising layer's input, drawn afresh every step (see
        :func:`aekit.corruption.make_corruption`). The layers above the first read flat codes, so
        only noise that acts value by value (masking, gaussian, salt-and-pepper) applies to all.
    layer_penalty : {"l1", "kl", "topk"} or None, default None
        The sparse layers' penalty (see :class:`aekit.families.sparse.SparseAutoencoder`; rho = 0.05,
        k = a quarter of the layer's units). None: "kl" with sigmoid units, else "l1".
    layer_alpha : float >= 0 or None, default None
        Weight of the sparse or contractive layers' penalty; None: the family's default (sparse: 0.1
        for l1, 3 for kl; contractive: 0.1).
    architecture, hidden_dims, latent_dim, activation, output, loss, tied, preset, scaling
        See :class:`aekit.families.autoencoder.AutoencoderConfig`. Only ``architecture="mlp"``: each
        layer is fully connected. ``activation`` is the units of every layer; None means "sigmoid", the
        logistic units of all three papers (also with ``preset="hinton"``, 784-1000-500-250-30).
        ``output`` and ``loss`` apply to the first layer, which reconstructs the data; a higher layer
        reconstructs sigmoid codes with a sigmoid and the cross-entropy, other codes linearly.
    max_epochs, batch_size, learning_rate, ..., random_state, verbose
        See :class:`aekit.engine.training.TrainConfig`. ``max_epochs`` counts the fine-tuning epochs; the
        other settings (validation split and early stopping included) apply to every stage.

    Attributes
    ----------
    history_ : list of dict
        One row per epoch of every stage, in order: the pretraining of layer 1, ..., layer L, then the
        fine-tuning. The column ``layer`` says which: l for the pretraining of layer l (1 is nearest
        the data), 0 for the fine-tuning. ``epoch`` counts within each stage.
    classes_ : ndarray of int, (n_classes,)
        The class labels, only when fitted with labels.

    Notes
    -----
    ``predict`` and ``predict_proba`` exist when the model was fitted with labels (or, unfitted,
    when ``objective`` may classify). ``score(X, y)`` is the accuracy of ``predict`` on the labelled
    samples of ``y`` for such a model, as a scikit-learn classifier's; without ``y``, or for a model
    fitted without labels, it is the mean of :meth:`score_samples` (minus the reconstruction error),
    as for every aekit autoencoder.

    Examples
    --------
    >>> import aekit
    >>> ds = aekit.load_dataset("digits")                             # X (1437, 1, 8, 8), y (1437,)
    >>> sdae = aekit.StackedAutoencoder(hidden_dims=(128,), latent_dim=32, pretrain_epochs=5,
    ...                                 max_epochs=20, verbose=0).fit(ds.X, ds.y)
    >>> sdae.predict(ds.X[:3]).shape, sdae.predict_proba(ds.X[:3]).shape
    ((3,), (3, 10))
    """

    _test_params: ClassVar[dict[str, Any]] = {
        # No pretraining here: the shared suite checks that the history of a resumed run counts the
        # fine-tuning epochs 1..max_epochs only. tests/test_stacked.py covers the pretraining.
        # "auto" classifies when given labels: the suite passes half-labelled y, so the head is covered.
        "hidden_dims": (16,), "latent_dim": 4, "pretrain_epochs": 0, "max_epochs": 2, "batch_size": 32, "verbose": 0,
        "random_state": 0, "objective": "auto",
    }

    # ------------------------------------------------------------------ configuration

    @classmethod
    def epochs(cls, params: Mapping[str, Any]) -> Epochs:
        return Epochs(True, "fine-tuning epochs of the unrolled network; pretrain_epochs sets the pretraining "
                      "epochs of each layer")

    def epochs_by_stage(self) -> list[tuple[str, int]]:
        self._check_fitted()
        stages: dict[str, int] = {}
        for row in self.history_:
            layer = int(row.get("layer", 0))
            name = f"pretraining of layer {layer}" if layer else "fine-tuning"
            stages[name] = stages.get(name, 0) + 1
        return list(stages.items())

    def _stacked(self) -> StackedConfig:
        return self._config(StackedConfig)

    def _layer_options(self, act: str) -> dict[str, Any]:
        """Penalty and weight of the layers of ``act`` units, with None resolved."""
        cfg = self._stacked()
        penalty = cfg.layer_penalty
        if penalty is None:
            penalty = "kl" if act == "sigmoid" else "l1"
        alpha = cfg.layer_alpha
        if alpha is None:
            alpha = ContractiveConfig.alpha if cfg.layer_family == "contractive" else DEFAULT_ALPHA.get(str(penalty), 0.0)
        return {"penalty": penalty, "alpha": alpha}

    def _layer_corruption(self) -> Corruption | None:
        if self.layer_family != "denoising":
            return None
        try:
            return make_corruption(self.layer_corruption)
        except ValueError as exc:
            raise ValueError(f"invalid layer_corruption={self.layer_corruption!r}: {exc}") from None

    def _check_params(self) -> None:
        super()._check_params()
        r = self.get_params(deep=False)
        if r["architecture"] != "mlp":
            raise ValueError(
                f"StackedAutoencoder stacks fully connected layers, so architecture must be 'mlp', got "
                f"{r['architecture']!r}; use Autoencoder for a convolutional network"
            )
        cfg = self._stacked()
        if cfg.layer_family not in LAYER_FAMILIES:
            raise ValueError(
                f"unknown layer_family {cfg.layer_family!r}; valid: {', '.join(LAYER_FAMILIES)} (the shallow "
                "autoencoder trained at each layer)"
            )
        pe = cfg.pretrain_epochs
        if isinstance(pe, bool) or not isinstance(pe, numbers.Integral) or pe < 0:
            raise ValueError(
                f"pretrain_epochs must be an integer >= 0 (epochs of greedy training per layer), got {pe!r}; "
                "use 0 to skip the pretraining"
            )
        if cfg.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {cfg.objective!r}; valid: {', '.join(OBJECTIVES)}")
        if cfg.objective == "none" and pe == 0:
            raise ValueError(
                "objective='none' (no fine-tuning) with pretrain_epochs=0 (no pretraining) would train nothing; "
                "set pretrain_epochs >= 1 or a fine-tuning objective"
            )
        if cfg.layer_penalty is not None and cfg.layer_penalty not in PENALTIES:
            raise ValueError(f"unknown layer_penalty {cfg.layer_penalty!r}; valid: None, {', '.join(PENALTIES)}")
        a = cfg.layer_alpha
        if a is not None and (isinstance(a, bool) or not isinstance(a, numbers.Real) or not 0 <= float(a) < math.inf):
            raise ValueError(
                f"layer_alpha must be a finite number >= 0 (the weight of the layers' penalty) or None, got {a!r}; "
                "use None for the family's default"
            )
        if cfg.layer_family == "sparse":
            opts = self._layer_options(r["activation"])
            if opts["penalty"] == "kl" and r["activation"] != "sigmoid":
                raise ValueError(
                    f"layer_penalty='kl' needs sigmoid units (rho_hat averages activations in (0, 1)), got "
                    f"activation={r['activation']!r}; use activation='sigmoid' or layer_penalty='l1'"
                )
        self._layer_corruption()

    def _widths(self) -> list[int]:
        r = self.resolved_
        return [int(d) for d in r["hidden_dims"]] + [int(r["latent_dim"])]

    def _check_input(self, X: np.ndarray) -> None:
        super()._check_input(X)
        corruption = self._layer_corruption()
        if corruption is None:
            return
        dims = (256, 128) if self.hidden_dims == "auto" else self.hidden_dims
        shapes = [tuple(X.shape[1:])] + [(int(d),) for d in dims]
        for i, shape in enumerate(shapes):
            try:
                corruption.check_shape(shape)
            except ValueError as exc:
                where = "the data" if i == 0 else f"the codes of layer {i}"
                raise ValueError(
                    f"layer_corruption={self.layer_corruption!r} cannot be applied to {where} (shape {shape}): {exc}"
                ) from None

    # ------------------------------------------------------------------ labels

    def _classes(self, y: Any, n: int) -> list[int] | None:
        """The class labels that the fine-tuning learns, or None for an unsupervised fine-tuning."""
        objective = self.objective
        if objective in ("reconstruct", "none") or (y is None and objective == "auto"):
            return None
        if y is None:
            raise ValueError(
                "objective='classify' needs class labels: call fit(X, y) with y of shape (n_samples,) "
                f"(integers, {UNLABELLED} for unlabelled samples), or use objective='reconstruct'"
            )
        labels = _label_array(y, n)
        labelled = labels != UNLABELLED
        if not labelled.any():
            if objective == "classify":
                raise ValueError(
                    f"objective='classify' needs at least one labelled sample, but every label is {UNLABELLED} "
                    "(unlabelled); pass labels, or use objective='reconstruct'"
                )
            return None
        return [int(c) for c in np.unique(labels[labelled])]

    def _label_indices(self, y: Any, n: int) -> np.ndarray:
        """(n,) int64 class indices into ``classes_``, -1 for unlabelled samples."""
        labels = _label_array(y, n)
        classes = np.asarray(self.fitted_info_["classes"], dtype=np.int64)
        idx = np.full(n, UNLABELLED, dtype=np.int64)
        labelled = labels != UNLABELLED
        idx[labelled] = np.searchsorted(classes, labels[labelled])
        return idx

    def fit(
        self, X: Any, y: Any = None, *, checkpoint_dir: str | os.PathLike | None = None, resume: bool = False
    ) -> StackedAutoencoder:
        """Pretrain the layers greedily on ``X``, then fine-tune.

        Parameters
        ----------
        X : array-like, (n_samples, n_features) or (n_samples, C, H, W) or (n_samples, C, L)
        y : array-like of int, (n_samples,), optional
            Class labels, -1 for unlabelled samples. With ``objective`` "auto" or "classify" the
            fine-tuning trains the classifier head on the labelled samples; pretraining uses all of ``X``.
        checkpoint_dir : path, optional
            Checkpoints of the fine-tuning go there, those of the pretraining of layer l in its
            subdirectory ``pretrain-layer-{l}`` (removed once the fit completes).
        resume : bool
            Continue from the checkpoints in ``checkpoint_dir`` (same data, same parameters).

        Returns
        -------
        self
        """
        super().fit(X, y, checkpoint_dir=checkpoint_dir, resume=resume)
        return self

    def _classes_of(self, y: Any, n: int) -> tuple[int, ...] | None:
        classes = self._classes(y, n)
        self.fitted_info_ = {} if classes is None else {"classes": classes}
        return None if classes is None else tuple(classes)

    # ------------------------------------------------------------------ module and training

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        r = self.resolved_
        act, tied = str(r["activation"]), bool(r["tied"])
        build = LAYER_FAMILIES[r["layer_family"]]
        opts = self._layer_options(act)
        layers: list[AutoencoderModule] = []
        in_shape = tuple(sample_shape)
        output, loss = r["output"], r["loss"]
        for width in self._widths():
            layers.append(build(LayerSpec(in_shape, width, act, tied, output, loss), opts))
            in_shape = (width,)
            output, loss = code_output(act)
        classes = self.fitted_info_.get("classes")
        return StackedAutoencoderModule(layers, self._widths()[-1], len(classes) if classes is not None else None)

    def _fit_module(self, Xs: np.ndarray, y: Any, seed: int, **fit_kw: Any) -> list[dict[str, float]]:
        module: StackedAutoencoderModule = self.module_
        cfg = self._train_config()
        layers = module.stack
        n_layers = len(layers)
        checkpoint_dir, resume = fit_kw.get("checkpoint_dir"), bool(fit_kw.get("resume", False))
        ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
        layer_dirs = [ckpt / f"pretrain-layer-{i + 1}" if ckpt is not None else None for i in range(n_layers)]
        if resume:
            if ckpt is None:
                raise ValueError("resume=True needs checkpoint_dir")
            if not any((d / CHECKPOINT_FILE).is_file() for d in [ckpt, *layer_dirs] if d is not None):
                raise ModelFileError(
                    f"no checkpoint to resume from in {ckpt} (expected {CHECKPOINT_FILE}); start a new run instead"
                )

        def resumes(d: Path | None) -> bool:
            return resume and d is not None and (d / CHECKPOINT_FILE).is_file()

        history: list[dict[str, float]] = []
        pretrain = int(self.pretrain_epochs) > 0
        pre_cfg = replace(cfg, max_epochs=int(self.pretrain_epochs) or 1)
        corruption = self._layer_corruption()
        H = Xs  # the input of the current layer: the data, then the codes of the layer below
        for i, layer in enumerate(layers):
            _prepare_layer(layer, H)
            if pretrain:
                # The same seed for every stage: each holds out the same samples for validation.
                rows = fit_module(
                    layer, H, None, pre_cfg, corruption, seed=seed, checkpoint_dir=layer_dirs[i],
                    resume=resumes(layer_dirs[i]),
                )
                history += [{"layer": i + 1, **row} for row in rows]
            last = i == n_layers - 1
            if not last and (pretrain or isinstance(layers[i + 1], SparseAutoencoderModule)):
                H = _codes(layer, H)

        classes = self.fitted_info_.get("classes")
        if self.objective != "none":
            labels = self._label_indices(y, Xs.shape[0]) if classes is not None else None
            # Supervised fine-tuning trains the encoder and the head; the decoder stays as pretrained.
            frozen = [p for layer in layers for p in layer.decoder.parameters() if p.requires_grad]
            if classes is None:
                frozen = []
            for p in frozen:
                p.requires_grad_(False)
            try:
                rows = fit_module(module, Xs, labels, cfg, None, seed=seed, checkpoint_dir=ckpt, resume=resumes(ckpt))
            finally:
                for p in frozen:
                    p.requires_grad_(True)
            history += [{"layer": 0, **row} for row in rows]
        for d in layer_dirs:
            if d is not None and d.is_dir():
                # Only a run interrupted during pretraining needs them; the fine-tuning has its own.
                shutil.rmtree(d, ignore_errors=True)
        return history

    # ------------------------------------------------------------------ classifier

    def _has_classifier(self) -> bool:
        if not hasattr(self, "module_"):
            return self.objective in ("auto", "classify")
        return self.module_.head is not None

    @property
    def classes_(self) -> np.ndarray:
        """The class labels, (n_classes,) int64; only for a model fitted with labels."""
        self._check_fitted()
        classes = self.fitted_info_.get("classes")
        if classes is None:
            raise AttributeError(
                f"This {type(self).__name__} was fitted without labels, so it has no classes_; fit(X, y) with "
                "class labels to train the classifier head"
            )
        return np.asarray(classes, dtype=np.int64)

    @available_if(_has_classifier)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities softmax(V F(x) + c), (n_samples, n_classes) float32, columns in ``classes_`` order."""
        Xs = self._prepare(X)
        module = self.module_
        return self._batched(lambda x: torch.softmax(module.class_logits(module.encode(x)), dim=1), Xs)

    @available_if(_has_classifier)
    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample, (n_samples,) int64."""
        Xs = self._prepare(X)
        module = self.module_
        idx = self._batched(lambda x: module.class_logits(module.encode(x)).argmax(dim=1).float(), Xs)
        return self.classes_[idx.astype(np.int64)]

    def score(self, X: Any, y: Any = None) -> float:
        """Accuracy on the labelled samples of ``y`` for a model fitted with labels, else the mean of
        :meth:`score_samples` (minus the reconstruction error)."""
        self._check_fitted()
        if y is None or self.module_.head is None:
            return super().score(X)
        n = int(np.shape(X)[0]) if np.ndim(X) > 0 else 0
        labels = _label_array(y, n)
        labelled = labels != UNLABELLED
        if not labelled.any():
            raise ValueError(f"score needs at least one labelled sample in y, but every label is {UNLABELLED}")
        return float(np.mean(self.predict(X)[labelled] == labels[labelled]))
