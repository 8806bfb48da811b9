"""Denoising autoencoder: reconstruct the clean x from a corrupted copy x' ~ q(x' | x).

P. Vincent, H. Larochelle, Y. Bengio and P.-A. Manzagol, "Extracting and composing robust features
with denoising autoencoders", ICML 2008; P. Vincent, H. Larochelle, I. Lajoie, Y. Bengio and
P.-A. Manzagol, "Stacked denoising autoencoders: learning useful representations in a deep network
with a local denoising criterion", JMLR 11 (2010). Solves::

    min_{f, g}  (1/N) sum_n  E_{x'_n ~ q(x' | x_n)} [ L(x_n, g(f(x'_n))) ]

with L the Bernoulli negative log-likelihood or the squared error, and the expectation estimated by
drawing a fresh x' for every sample at every step (see :mod:`aekit.corruption` for q). The model
cannot copy its input, so even an overcomplete code has to learn the structure of the data: for
Gaussian noise of small sigma, g(f(x)) - x estimates sigma^2 * grad log p(x) (Alain and Bengio, 2014).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import numpy as np
import torch

from aekit.core.params import Explain, seed_from
from aekit.data.corruption import Corruption, make_corruption
from aekit.data.preprocessing import check_array
from aekit.engine.training import TrainConfig
from aekit.families.autoencoder import Autoencoder, AutoencoderConfig
from aekit.model.base import DataInfo, declare_params
from aekit.model.registry import register


@dataclass
class DenoisingConfig:
    """Hyperparameters of the corruption process."""

    # The corruption process q(x'|x) as a spec string, e.g. "gaussian:0.3", "block:8" or
    # "masking:0.25+gaussian:0.1". Vincent et al. (2010) find masking noise with nu near 0.25 robust on digits.
    corruption: Annotated[str, Explain("the corruption process q(x'|x)", "give it as a string such as 'masking:0.25' or 'gaussian:0.3'")] = "masking:0.25"


@register(
    "denoising",
    "autoencoder trained to undo a corruption q(x'|x) sampled every step: gaussian, masking, salt-and-pepper, block, grayscale, translate",
    capabilities=("gradient", "images", "stackable"),
)
@declare_params(AutoencoderConfig, DenoisingConfig, TrainConfig)
class DenoisingAutoencoder(Autoencoder):
    """Denoising autoencoder, scikit-learn style.

    Parameters
    ----------
    corruption : str, default "masking:0.25"
        The corruption process q(x'|x), applied to the scaled data of each training batch afresh (and to
        the validation batches, so the validation loss is the denoising loss). Terms ``gaussian:sigma``,
        ``masking:nu``, ``salt-and-pepper:p``, ``block:size[:n_blocks]``, ``grayscale``, ``translate:shift``, joined by ``+``;
        see :func:`aekit.corruption.make_corruption`.
    architecture, hidden_dims, latent_dim, activation, output, loss, tied, scaling
        See :class:`aekit.families.autoencoder.AutoencoderConfig`.
    max_epochs, batch_size, learning_rate, ..., random_state, verbose
        See :class:`aekit.engine.training.TrainConfig`; ``random_state`` also seeds the corruption.

    Examples
    --------
    >>> import aekit
    >>> X = aekit.load_dataset("digits").X                          # (1437, 1, 8, 8)
    >>> dae = aekit.DenoisingAutoencoder(corruption="gaussian:0.3", max_epochs=5, verbose=0).fit(X)
    >>> X_noisy = dae.corrupt(X, random_state=0)
    >>> dae.denoise(X_noisy).shape
    (1437, 1, 8, 8)
    """

    @staticmethod
    def _process(spec: str) -> Corruption:
        try:
            return make_corruption(spec)
        except ValueError as exc:
            raise ValueError(f"invalid corruption={spec!r}: {exc}") from None

    def _check_params(self) -> None:
        super()._check_params()
        self._process(self.corruption)

    @classmethod
    def resolve(cls, params: Mapping[str, Any], data: DataInfo) -> dict[str, Any]:
        r = super().resolve(params, data)
        try:
            cls._process(r["corruption"]).check_shape(data.sample_shape)
        except ValueError as exc:
            raise ValueError(f"corruption={r['corruption']!r} cannot be applied to this data: {exc}") from None
        return r

    def _corruption(self) -> Corruption:
        return self._process(self.resolved_.corruption)

    _layer_config: ClassVar[type | None] = DenoisingConfig

    @classmethod
    def layer_corruption(cls, options: Mapping[str, Any]) -> Corruption:
        """The corruption of ``options["corruption"]`` (default masking:0.25) that each layer is trained under."""
        return cls._process(cls.layer_options(options, 1, "sigmoid")["corruption"])

    def corrupt(self, X: Any, random_state: Any = None) -> np.ndarray:
        """Draw x' ~ q(x'|x) for each row of ``X`` with the training corruption, in the units of ``X``.

        The corruption acts on the scaled data, as in training, and the result is scaled back.
        """
        Xs = self._prepare(X)
        gen = torch.Generator().manual_seed(seed_from(random_state))
        noisy = self._corruption()(torch.from_numpy(Xs), gen).numpy()
        return self.scaler_.inverse_transform(noisy).reshape(np.shape(check_array(X)))

    def denoise(self, X_noisy: Any) -> np.ndarray:
        """Clean estimate g(f(x')) of corrupted data, same shape and units as ``X_noisy`` (= :meth:`reconstruct`)."""
        return self.reconstruct(X_noisy)

