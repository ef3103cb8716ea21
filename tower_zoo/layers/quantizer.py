"""Residual quantization (RQ) of vectors into L codebooks of K codewords."""

from __future__ import annotations

from typing import Any

import tensorflow as tf


class ResidualQuantizer(tf.keras.layers.Layer):
    """x [B, D] ≈ Σ_l C_l[k_l]: level l quantizes the residual left by levels < l to its nearest codeword.

    ``call(x) -> (quantized [B, D], codes int32 [B, L], loss scalar)`` (``quantize`` gives the loss per
    level). ``quantized`` passes gradients straight through to x (x + sg(q - x)); ``loss`` is the VQ-VAE
    codebook + commitment loss summed over levels: ||sg(r_l) - c_l||² + beta · ||r_l - sg(c_l)||² (batch mean).
    """

    def __init__(self, num_levels: int, codebook_size: int, beta: float = 0.25, **kwargs: Any):
        super().__init__(**kwargs)
        if num_levels < 1 or codebook_size < 2:
            raise ValueError(f"need num_levels >= 1 and codebook_size >= 2, got {num_levels}, {codebook_size}")
        self.num_levels, self.codebook_size, self.beta = num_levels, codebook_size, beta

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.codebooks = self.add_weight("codebooks", shape=(self.num_levels, self.codebook_size, dim),
                                         initializer=tf.keras.initializers.RandomNormal(stddev=0.1))
        super().build(input_shape)

    def call(self, x: tf.Tensor):
        quantized, codes, level_losses = self.quantize(x)
        return quantized, codes, tf.reduce_sum(level_losses)

    def quantize(self, x: tf.Tensor):
        """``(quantized [B, D] straight-through, codes int32 [B, L], per-level losses [L])``: level l's loss
        aligns codebook l with the residual r_l it quantizes, ||sg(r_l) - c_l||² + beta · ||r_l - sg(c_l)||²
        (batch means), where r_0 = x and r_{l+1} = r_l - sg(c_l)."""
        residual, quantized, codes, losses = x, tf.zeros_like(x), [], []
        for level in range(self.num_levels):
            codebook = self.codebooks[level]  # [K, D]
            distances = (tf.reduce_sum(tf.square(residual), -1, keepdims=True)
                         - 2.0 * tf.matmul(residual, codebook, transpose_b=True)
                         + tf.reduce_sum(tf.square(codebook), -1)[tf.newaxis, :])
            code = tf.argmin(distances, axis=-1, output_type=tf.int32)
            chosen = tf.gather(codebook, code)
            losses.append(tf.reduce_mean(tf.reduce_sum(tf.square(tf.stop_gradient(residual) - chosen), -1))
                          + self.beta * tf.reduce_mean(tf.reduce_sum(tf.square(residual - tf.stop_gradient(chosen)), -1)))
            quantized += chosen
            residual -= tf.stop_gradient(chosen)
            codes.append(code)
        straight_through = x + tf.stop_gradient(quantized - x)
        return straight_through, tf.stack(codes, axis=1), tf.stack(losses)

    def initialize_from(self, x: tf.Tensor | "np.ndarray", iterations: int = 10, seed: int = 0) -> None:
        """Sets each level's codebook by k-means on the residuals the previous levels leave for ``x``
        [N, D] (N >= K), starting from K distinct random rows: the usual remedy for codebook collapse."""
        import numpy as np

        x = np.asarray(x, np.float64)
        if x.shape[0] < self.codebook_size:
            raise ValueError(f"need at least {self.codebook_size} vectors to initialize, got {x.shape[0]}")
        if not self.built:
            self.build(tf.TensorShape([None, x.shape[1]]))
        rng = np.random.default_rng(seed)
        residual, books = x.copy(), []
        for _ in range(self.num_levels):
            centres = residual[rng.choice(len(residual), self.codebook_size, replace=False)]
            for _ in range(iterations):
                assign = np.argmin(((residual[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
                for k in range(self.codebook_size):
                    members = residual[assign == k]
                    if len(members):
                        centres[k] = members.mean(axis=0)
            assign = np.argmin(((residual[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
            residual = residual - centres[assign]
            books.append(centres)
        self.codebooks.assign(np.stack(books).astype(np.float32))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_levels": self.num_levels, "codebook_size": self.codebook_size,
                "beta": self.beta}
