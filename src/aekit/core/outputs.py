"""Small frozen output records shared by every family (as diffusers does for its autoencoders)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass(frozen=True)
class AEOutput:
    """What a model's ``forward`` returns.

    Attributes
    ----------
    z : Tensor, (B, K)
        The code (for a VAE, a sample of q(z|x)).
    x_hat : Tensor, same shape as the input
        The reconstruction in the model's data space (after the output non-linearity). A classifier being
        fine-tuned (training mode) leaves it empty, shape (B, 0): its loss reads only the class logits, and the
        decoder pass would cost about a quarter of each step (see :func:`classifier_output`).
    logits : Tensor or None
        Pre-sigmoid decoder output when the output is Bernoulli, so the loss can use the stable
        ``binary_cross_entropy_with_logits``.
    mu, logvar : Tensor or None, (B, K)
        Gaussian posterior parameters (variational families).
    x_in : Tensor or None, same shape as the input
        The input the encoder saw: the corrupted batch when the training loop corrupts it. A penalty
        on the encoder (the contractive one) is taken there, not at the clean target.
    extras : dict
        Anything else a family's loss needs (e.g. pre-activations, class logits).
    """

    z: Tensor
    x_hat: Tensor
    logits: Tensor | None = None
    mu: Tensor | None = None
    logvar: Tensor | None = None
    x_in: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class LossOutput:
    """A loss total and its named, already weighted terms (``total == sum(terms.values())``).

    Every term is logged by name, so a penalty that is silently zero or of the wrong sign is visible
    in ``history.csv``.
    """

    total: Tensor
    terms: dict[str, Tensor]


def classifier_output(
    z: Tensor, class_logits: Tensor, decode: Callable[[Tensor], Tensor], training: bool, x_in: Tensor | None = None
) -> AEOutput:
    """The output of an encoder with a softmax head: the reconstruction only where something may read it.

    In training mode only the loss reads the output, and a classifier's loss is the cross-entropy of
    ``class_logits``, so ``x_hat`` is left empty (B, 0); in evaluation mode it is ``decode(z)``, computed
    without a graph (the decoder is not trained with the head).
    """
    if training:
        return AEOutput(z=z, x_hat=z.new_empty((z.shape[0], 0)), x_in=x_in, extras={"class_logits": class_logits})
    with torch.no_grad():
        x_hat = decode(z)
    return AEOutput(z=z, x_hat=x_hat, x_in=x_in, extras={"class_logits": class_logits})
