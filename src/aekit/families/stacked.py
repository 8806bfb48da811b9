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

where J_l is the objective of the layer's family (``layer_family``: any family registered with the
capability "stackable", which builds one layer with its ``layer_module``), each that family's own: the reconstruction L(h, g_l(f_l(h))) ("autoencoder"); its expectation under a corruption
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

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aekit.core.losses import reconstruction
from aekit.core.nets import Activation, apply_output
from aekit.core.outputs import AEOutput, LossOutput, classifier_output
from aekit.core.params import AUTO, Auto, Explain, Interval
from aekit.data.preprocessing import UNLABELLED
from aekit.engine.rundir import CHECKPOINT_FILE, ModelFileError
from aekit.engine.training import TrainConfig, fit_module
from aekit.families.autoencoder import Autoencoder, AutoencoderConfig, AutoencoderModule, HiddenDims
from aekit.model.base import DataInfo, Epochs, declare_params
from aekit.model.classifier import ClassifierMixin
from aekit.model.registry import families, register

#: The capability a family declares (in its ``register`` call) to serve as the layer of a stack: its
#: estimator class then has ``layer_options``, ``layer_module`` and ``layer_corruption``.
STACKABLE = "stackable"
#: The stack's parameter -> the parameter of the layer family it sets, for a family that has it.
LAYER_OPTIONS = {"layer_penalty": "penalty", "layer_alpha": "alpha", "layer_corruption": "corruption"}


@dataclass
class StackedNetConfig(AutoencoderConfig):
    """The network of the stack: fully connected layers of logistic units."""

    # Each layer of the stack is one fully connected layer each way.
    architecture: Annotated[
        Literal["mlp"],
        Explain("each layer of the stack is fully connected", "use Autoencoder for a convolutional network"),
    ] = "mlp"
    # Widths of the hidden layers, each pretrained as one layer of the stack below the code layer; two
    # narrowing towards the code, as the autoencoder's.
    hidden_dims: HiddenDims = (256, 128)
    # The units of every layer: the logistic units of all three papers (Hinton, Bengio, Vincent).
    activation: Activation = "sigmoid"


@dataclass
class StackedConfig:
    """Hyperparameters of the greedy pretraining and of the fine-tuning."""

    # The shallow autoencoder of each layer, a family registered as stackable. Vincent et al. (2010):
    # stacked denoising autoencoders beat stacked plain ones on every task.
    layer_family: Annotated[
        str, Explain("the shallow autoencoder trained at each layer", "use a family registered as stackable")
    ] = "denoising"
    # Epochs of greedy training per layer; ten bring each layer's loss most of the way down on digits.
    pretrain_epochs: Annotated[int, Interval(0), Explain("epochs of greedy training per layer", "use 0 to skip the pretraining")] = 10
    # The fine-tuning objective: "reconstruct", "classify" (needs y), "auto" or "none" (no fine-tuning).
    # Reconstruction by default: a transformer in a scikit-learn pipeline must ignore the y it is passed.
    objective: Annotated[
        Literal["auto", "reconstruct", "classify", "none"],
        Auto("classify when fit gets labelled y, else reconstruct", from_data=True),
    ] = "reconstruct"
    # The corruption q(h'|h) of the layers of a family that has one (denoising); Vincent et al. find
    # masking noise near 0.25 robust.
    layer_corruption: Annotated[str, Explain("the corruption of each denoising layer's input", "give it as a string such as 'masking:0.25'")] = "masking:0.25"
    # The penalty of the layers of a family that has one (sparse): Ng's KL suits logistic units.
    layer_penalty: Annotated[str, Auto("kl for sigmoid units, else l1; none for a layer family without a penalty")] = AUTO
    # The penalty weight of the layers of a family that has one (sparse, contractive): that family's own default.
    layer_alpha: Annotated[
        float | Literal["auto"],
        Interval(0),
        Explain("the weight of the layers' penalty", "use 'auto' for the layer family's default"),
        Auto("the layer family's default (sparse: 0.1 for l1, 3 for kl; contractive: 0.1)"),
    ] = "auto"
    # Dropout while the classifier is fine-tuned (Srivastava et al. 2014, whose pretrained nets fine-tuned with
    # dropout beat those without): each hidden unit of the encoder is zeroed with this probability at every
    # step, and each input value with finetune_input_dropout (they use 0.5 and 0.2); 0 turns it off. Without it
    # the fine-tuned stack fits its training images exactly within a few epochs (benchmarks/RESULTS.md).
    finetune_dropout: Annotated[float, Interval(0, 1, closed="left")] = 0.0
    finetune_input_dropout: Annotated[float, Interval(0, 1, closed="left")] = 0.0
    # The max-norm constraint that Srivastava et al. pair with dropout: after every fine-tuning step of the
    # classifier, each hidden unit's incoming weight vector longer than this is scaled back to this length
    # (they use 3 to 4); 0 turns it off.
    finetune_max_norm: Annotated[
        float, Interval(0), Explain("the longest incoming weight vector of a hidden unit while fine-tuning", "use 0 to turn it off")
    ] = 0.0


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


def stackable_families() -> list[str]:
    """The names of the registered families that can be the layer of a stack, sorted."""
    return [name for name, info in families().items() if STACKABLE in info.capabilities]


def layer_family(name: str) -> Any:
    """The estimator class of the stackable family ``name``; a ValueError lists the valid names."""
    valid = stackable_families()
    if name not in valid:
        raise ValueError(
            f"unknown layer_family {name!r}; valid: {', '.join(valid)} (the shallow autoencoder trained at each layer)"
        )
    return families()[name].estimator


def _widths(params: Mapping[str, Any]) -> list[int]:
    """d_1, ..., d_L: ``hidden_dims`` (resolved) then ``latent_dim``."""
    return [int(d) for d in params["hidden_dims"]] + [int(params["latent_dim"])]


class StackedAutoencoderModule(nn.Module):
    """The unrolled stack: encoders f_1..f_L, decoders g_L..g_1, and an optional softmax head.

    The layers are the shallow autoencoder modules themselves, so the parameters the unrolled network
    starts from are the pretrained ones by construction, under the same names whether pretrained or
    not (``layers.{l}.encoder...``, ``layers.{l}.decoder...``, ``head...``). Shapes: x (B, *sample_shape),
    z (B, d_L), class logits (B, n_classes).
    """

    def __init__(self, layers: Sequence[AutoencoderModule], code_dim: int, n_classes: int | None = None,
                 dropout: float = 0.0, input_dropout: float = 0.0, max_norm: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.output, self.loss_kind = layers[0].output, layers[0].loss_kind
        self.head = nn.Linear(code_dim, n_classes) if n_classes is not None else None
        # fit_module passes the labels to ``loss`` only when this is set.
        self.uses_labels = n_classes is not None
        # Dropout of the hidden units and of the input while the classifier trains (never in evaluation).
        self.dropout, self.input_dropout = float(dropout), float(input_dropout)
        # The longest incoming weight vector of an encoder unit after each classifier step; 0: none.
        self.max_norm = float(max_norm)

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

    def _dropout_codes(self, x: Tensor) -> Tensor:
        """The top code of ``x`` with dropout of the input and of every layer's units (training the classifier)."""
        h = F.dropout(x, self.input_dropout, training=True)
        for layer in self.stack:
            h = F.dropout(layer.encode(h), self.dropout, training=True)
        return h

    def after_step(self) -> None:
        """Scale every encoder unit's incoming weight vector back to ``max_norm`` (classifier steps only)."""
        if self.head is None or self.max_norm <= 0:
            return
        for layer in self.stack:
            # Each layer's encoder is fully connected: its matrices (out, in) hold one unit's incoming weights
            # a row, and its other parameters are biases. renorm_ leaves the shorter rows as they are.
            for p in layer.encoder.parameters():
                if p.dim() == 2:
                    p.renorm_(2, 0, self.max_norm)

    def forward(self, x: Tensor) -> AEOutput:
        dropping = self.head is not None and self.training and (self.dropout > 0 or self.input_dropout > 0)
        z = self._dropout_codes(x) if dropping else self.encode(x)
        if self.head is not None:
            # The decoder is frozen while the classifier is fine-tuned, and reconstructs only in evaluation mode.
            return classifier_output(z, self.head(z), self.decode, self.training)
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


@torch.no_grad()
def _codes(layer: AutoencoderModule, H: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """The codes f_l(H) of a trained layer, (N, d_l) float32, the training data of the layer above."""
    layer.eval()
    dev = next(layer.parameters()).device
    out = [layer.encode(torch.from_numpy(H[i : i + batch_size]).to(dev)).cpu().numpy() for i in range(0, H.shape[0], batch_size)]
    return np.concatenate(out).astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------- estimator


@register(
    "stacked",
    "greedy layer-wise pretraining of shallow autoencoders (plain, denoising, sparse, contractive), then fine-tuning "
    "of the unrolled deep net or of a classifier head",
    capabilities=("gradient", "images", "labels"),
)
@declare_params(StackedNetConfig, StackedConfig, TrainConfig)
class StackedAutoencoder(ClassifierMixin, Autoencoder):
    """Stacked autoencoder, scikit-learn style.

    Each layer of ``hidden_dims + (latent_dim,)`` is first trained as a shallow autoencoder of
    ``layer_family`` on the codes of the layer below, for ``pretrain_epochs`` epochs; then the unrolled
    network is fine-tuned for ``max_epochs`` epochs, to reconstruct the data or, given labels, to
    classify them with a softmax layer on the top code.

    Parameters
    ----------
    layer_family : str, default "denoising"
        The shallow autoencoder trained at each layer: a family registered with the capability
        "stackable" (autoencoder, contractive, denoising, sparse), whose ``layer_module`` builds one
        linear layer each way. "denoising" gives Vincent et al.'s stacked denoising autoencoder.
    pretrain_epochs : int >= 0, default 10
        Epochs of greedy training per layer; 0 skips pretraining (the random-initialization baseline).
    objective : {"reconstruct", "classify", "auto", "none"}, default "reconstruct"
        Fine-tuning objective. "reconstruct": the reconstruction of the data through the unrolled
        network. "classify": cross-entropy of a linear softmax head on the top code, trained with the
        encoder on the labelled samples of ``y`` (-1 marks an unlabelled sample, used by pretraining
        only); the decoder keeps its pretrained weights (with ``tied=True`` the decoder's weights are the
        encoder's, so they follow the fine-tuned encoder). "auto": "classify" when ``fit`` gets ``y``
        with at least one label, else "reconstruct". "none": no fine-tuning (``y`` is ignored). The
        default ignores ``y``, as a transformer in a scikit-learn pipeline must (a pipeline passes the
        labels of the final classifier to every step).
    layer_corruption : str, default "masking:0.25"
        The ``corruption`` of a layer family that has one (denoising): q(h'|h) of each layer's input, drawn afresh every step (see
        :func:`aekit.corruption.make_corruption`). The layers above the first read flat codes, so
        only noise that acts value by value (masking, gaussian, salt-and-pepper) applies to all.
    layer_penalty : str, default "auto"
        The ``penalty`` of a layer family that has one (sparse: "l1", "kl" or "topk"; rho and k take
        that family's defaults for each layer). "auto": "kl" with sigmoid units, else "l1"; resolved to
        None for a layer family without a penalty.
    layer_alpha : float >= 0 or "auto", default "auto"
        The ``alpha`` (penalty weight) of a layer family that has one; "auto": that family's default
        (sparse: 0.1 for l1, 3 for kl; contractive: 0.1), None for a layer family without one.
    finetune_dropout, finetune_input_dropout : float in [0, 1), default 0
        Dropout while the classifier head is fine-tuned (``objective="classify"``): every hidden unit of the
        encoder, and every input value, zeroed with this probability at each step (Srivastava et al. 2014 use
        0.5 and 0.2). The codes ``transform`` returns and the predictions never drop anything.
    finetune_max_norm : float >= 0, default 0
        With ``objective="classify"``, after every fine-tuning step each hidden unit's incoming weight vector
        (a row of an encoder layer's weight) longer than this is scaled back to this length, the constraint
        Srivastava et al. (2014) pair with dropout (they use 3 to 4). 0: no constraint.
    architecture, hidden_dims, latent_dim, activation, output, loss, tied, scaling
        See :class:`aekit.families.autoencoder.AutoencoderConfig`. Only ``architecture="mlp"``: each
        layer is fully connected. ``activation`` is the units of every layer, by default "sigmoid",
        the logistic units of all three papers. Preset (:meth:`from_preset`): ``"hinton"``,
        784-1000-500-250-30 with logistic units.
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
        The class labels, only when fitted with labels (``data_info_.classes``, known when the
        classifier head is built).
    resolved_ : Resolved
        The parameters the model was built with: ``objective``, ``layer_penalty`` and ``layer_alpha``
        decided, ``hidden_dims``, ``output`` and ``loss`` from the data.

    Notes
    -----
    The classifier face is :class:`aekit.model.classifier.ClassifierMixin`'s. ``predict`` and
    ``predict_proba`` exist when the model was fitted with labels (or, unfitted,
    when ``objective`` may classify). ``score(X, y)`` is the accuracy of ``predict`` on the labelled
    samples of ``y`` for such a model, as a scikit-learn classifier's; without ``y``, or for a model
    fitted without labels, it is the mean of :meth:`score_samples` (minus the reconstruction error),
    as for every aekit autoencoder.

    Examples
    --------
    >>> import aekit
    >>> ds = aekit.load_dataset("digits")                             # X (1437, 1, 8, 8), y (1437,)
    >>> sdae = aekit.StackedAutoencoder(hidden_dims=(128,), latent_dim=32, pretrain_epochs=5, max_epochs=20,
    ...                                 objective="classify", verbose=0).fit(ds.X, ds.y)
    >>> sdae.predict(ds.X[:3]).shape, sdae.predict_proba(ds.X[:3]).shape
    ((3,), (3, 10))
    """

    _presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        # Hinton & Salakhutdinov's MNIST network, pretrained layer by layer with logistic units as in the paper.
        "hinton": {"hidden_dims": (1000, 500, 250), "latent_dim": 30},
    }
    _test_params: ClassVar[dict[str, Any]] = {
        # No pretraining here: the shared suite checks that the history of a resumed run counts the
        # fine-tuning epochs 1..max_epochs only. tests/test_stacked.py covers the pretraining.
        # "auto" classifies when given labels: the suite passes half-labelled y, so the head is covered.
        "hidden_dims": (16,), "latent_dim": 4, "pretrain_epochs": 0, "max_epochs": 2, "batch_size": 32, "verbose": 0,
        "random_state": 0, "objective": "auto",
    }
    _test_variants: ClassVar[tuple[dict[str, Any], ...]] = ({"tied": True},)

    # ------------------------------------------------------------------ parameters

    @classmethod
    def epochs(cls, params: Mapping[str, Any]) -> Epochs:
        return Epochs(True, "fine-tuning epochs of the unrolled network; pretrain_epochs sets the pretraining "
                      "epochs of each layer")

    @staticmethod
    def _layer_options(params: Mapping[str, Any], family: Any) -> dict[str, Any]:
        """The layer family's own parameters that the stack's ``layer_*`` parameters set ("auto" left out)."""
        declared = family().get_params()
        return {
            theirs: params[ours] for ours, theirs in LAYER_OPTIONS.items()
            if theirs in declared and params[ours] is not None and params[ours] != AUTO
        }

    @staticmethod
    def _auto_penalty(params: Mapping[str, Any], family: Any) -> str | None:
        """``layer_penalty="auto"``: Ng's KL for logistic units, else L1; None for a family without a penalty."""
        if "penalty" not in family().get_params():
            return None
        if params["layer_penalty"] != AUTO:
            return str(params["layer_penalty"])
        return "kl" if params["activation"] == "sigmoid" else "l1"

    @classmethod
    def _layer_settings(cls, params: Mapping[str, Any], family: Any, width: int) -> dict[str, Any]:
        """The layer family's settings of a layer of ``width`` units; its refusal names the stack's parameters."""
        options = cls._layer_options({**params, "layer_penalty": cls._auto_penalty(params, family)}, family)
        try:
            return dict(family.layer_options(options, width, str(params["activation"])))
        except ValueError as exc:
            given = ", ".join(
                f"{ours}={params[ours]!r}" for ours, theirs in LAYER_OPTIONS.items() if theirs in family().get_params()
            )
            raise ValueError(
                f"layer_family={params['layer_family']!r} cannot build a layer of {width} {params['activation']!r} "
                f"units from {given}: {exc}"
            ) from None

    def _check_params(self) -> None:
        super()._check_params()
        params = self.get_params(deep=False)
        family = layer_family(self.layer_family)
        if self.objective == "none" and self.pretrain_epochs == 0:
            raise ValueError(
                "objective='none' (no fine-tuning) with pretrain_epochs=0 (no pretraining) would train nothing; "
                "set pretrain_epochs >= 1 or a fine-tuning objective"
            )
        declared = family().get_params()
        for ours in ("layer_penalty", "layer_alpha"):
            if params[ours] not in (AUTO, None) and LAYER_OPTIONS[ours] not in declared:
                able = ", ".join(n for n in stackable_families() if LAYER_OPTIONS[ours] in layer_family(n)().get_params())
                raise ValueError(
                    f"{ours}={params[ours]!r} has no effect: layer_family={self.layer_family!r} has no "
                    f"{LAYER_OPTIONS[ours]}; leave {ours}='auto', or choose a layer family that has one ({able})"
                )
        # The layer family checks its own settings; the widths are known once hidden_dims is resolved.
        self._layer_settings(params, family, int(self.latent_dim))
        options = self._layer_options(params, family)
        try:
            family.layer_corruption(options)
        except ValueError as exc:
            raise ValueError(f"invalid layer_corruption={self.layer_corruption!r}: {exc}") from None

    @classmethod
    def resolve(cls, params: Mapping[str, Any], data: DataInfo) -> dict[str, Any]:
        """The autoencoder's choices (hidden sizes, scaling, output and loss of the first layer), the
        objective (classify when the data have classes), the layers' penalty and weight; a ValueError when
        the layers' corruption cannot act on the data or on the codes."""
        r = super().resolve(params, data)
        if r["objective"] == AUTO:
            r["objective"] = "classify" if data.classes is not None else "reconstruct"
        family = layer_family(r["layer_family"])
        widths = _widths(r)
        settings = [cls._layer_settings(r, family, w) for w in widths]
        r["layer_penalty"] = cls._auto_penalty(r, family)
        if r["layer_alpha"] == AUTO:
            r["layer_alpha"] = settings[0].get("alpha")
        corruption = family.layer_corruption(cls._layer_options(r, family))
        if corruption is not None:
            shapes = [tuple(data.sample_shape)] + [(w,) for w in widths[:-1]]
            for i, shape in enumerate(shapes):
                try:
                    corruption.check_shape(shape)
                except ValueError as exc:
                    where = "the data" if i == 0 else f"the codes of layer {i}"
                    raise ValueError(
                        f"layer_corruption={r['layer_corruption']!r} cannot be applied to {where} (shape {shape}): {exc}"
                    ) from None
        return r

    # ------------------------------------------------------------------ labels

    def _classes_of(self, y: Any, n: int) -> tuple[int, ...] | None:
        """The class labels that the fine-tuning learns, or None for an unsupervised fine-tuning."""
        objective = self.objective
        if objective in ("reconstruct", "none") or (y is None and objective == AUTO):
            return None
        if y is None:
            raise ValueError(
                "objective='classify' needs class labels: call fit(X, y) with y of shape (n_samples,) "
                f"(integers, {UNLABELLED} for unlabelled samples), or use objective='reconstruct'"
            )
        classes = self._labelled_classes(y, n)
        if classes is None and objective == "classify":
            raise ValueError(
                f"objective='classify' needs at least one labelled sample, but every label is {UNLABELLED} "
                "(unlabelled); pass labels, or use objective='reconstruct'"
            )
        if classes is not None and len(classes) < 2:
            raise ValueError(
                f"y holds one class ({classes[0]}); a classifier needs samples of at least two classes, so pass "
                "labels of two or more, or use objective='reconstruct'"
            )
        return classes

    def _may_classify(self) -> bool:
        return self.objective in (AUTO, "classify")

    def fit(
        self, X: Any, y: Any = None, *, checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
        allow_data_change: bool = False,
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
        allow_data_change : bool
            With ``resume``, continue even if the data differs from the data the checkpoints were trained on.

        Returns
        -------
        self
        """
        super().fit(X, y, checkpoint_dir=checkpoint_dir, resume=resume, allow_data_change=allow_data_change)
        return self

    # ------------------------------------------------------------------ module and training

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        r = self.resolved_
        family = layer_family(r.layer_family)
        options = self._layer_options(r, family)
        act, tied = str(r.activation), bool(r.tied)
        layers: list[AutoencoderModule] = []
        in_shape, output, loss = tuple(sample_shape), str(r.output), str(r.loss)
        for width in _widths(r):
            layers.append(family.layer_module(in_shape, width, act, tied, output, loss, options))
            in_shape = (width,)
            output, loss = code_output(act)
        classes = self.data_info_.classes if r.objective == "classify" else None
        return StackedAutoencoderModule(layers, _widths(r)[-1], None if classes is None else len(classes),
                                        float(r.finetune_dropout), float(r.finetune_input_dropout),
                                        float(r.finetune_max_norm))

    def _fit_module(self, Xs: np.ndarray, y: Any, seed: int, **fit_kw: Any) -> list[dict[str, float]]:
        module: StackedAutoencoderModule = self.module_
        r = self.resolved_
        cfg = self._fit_config()
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
        pretrain = int(r.pretrain_epochs) > 0
        pre_cfg = replace(cfg, max_epochs=int(r.pretrain_epochs) or 1)
        family = layer_family(r.layer_family)
        corruption = family.layer_corruption(self._layer_options(r, family))
        H = Xs  # the input of the current layer: the data, then the codes of the layer below
        for i, layer in enumerate(layers):
            # A layer that needs its training input before training (a sparse layer's centring) says so.
            prepare = getattr(layer, "prepare", None)
            if prepare is not None:
                prepare(H)
            if pretrain:
                # The same seed for every stage: each holds out the same samples for validation.
                rows = fit_module(
                    layer, H, None, pre_cfg, corruption, seed=seed, checkpoint_dir=layer_dirs[i],
                    resume=resumes(layer_dirs[i]),
                )
                history += [{"layer": i + 1, **row} for row in rows]
            last = i == n_layers - 1
            if not last and (pretrain or hasattr(layers[i + 1], "prepare")):
                H = _codes(layer, H)

        if r.objective != "none":
            labels = self._fit_labels(y, Xs.shape[0])
            # Supervised fine-tuning trains the encoder and the head; the decoder stays as pretrained.
            frozen = [p for layer in layers for p in layer.decoder.parameters() if p.requires_grad]
            if labels is None:
                frozen = []
            for p in frozen:
                p.requires_grad_(False)
            try:
                rows = fit_module(
                    module, Xs, labels, cfg, None, self._callbacks(), seed=seed, checkpoint_dir=ckpt,
                    resume=resumes(ckpt),
                )
            finally:
                for p in frozen:
                    p.requires_grad_(True)
            history += [{"layer": 0, **row} for row in rows]
        for d in layer_dirs:
            if d is not None and d.is_dir():
                # Only a run interrupted during pretraining needs them; the fine-tuning has its own.
                shutil.rmtree(d, ignore_errors=True)
        return history

    def epochs_by_stage(self) -> list[tuple[str, int]]:
        """The epochs the fit trained, by stage and in order: ``("pretraining of layer l", n)`` for each
        pretrained layer, then ``("fine-tuning", n)``; from the ``layer`` column of ``history_``."""
        self._check_fitted()
        return epochs_by_stage(self.history_)


def epochs_by_stage(history: Sequence[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """Epochs by stage of a staged history (a ``layer`` column: 1..L pretraining, 0 fine-tuning), in order."""
    stages: dict[str, int] = {}
    for row in history:
        layer = int(row.get("layer", 0))
        name = f"pretraining of layer {layer}" if layer else "fine-tuning"
        stages[name] = stages.get(name, 0) + 1
    return list(stages.items())
