"""LSTM click predictor: a user's recent items -> will they click this item?"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class ClickLSTM(nnx.Module):
    """Item embedding -> LSTM over the history -> [final state, target embedding] -> dense ReLU -> click logit.

    Histories are right-padded: positions `0..length-1` hold the items, oldest first.
    `nnx.RNN` receives the lengths (`seq_lengths`), so the final state of each direction
    is the one after the last real item and nothing in a padded position reaches the
    output; an empty history gives a zero state.

    Args:
        num_embeddings: rows of the item embedding (padding, known items, out-of-vocabulary id).
        embed_dim: item embedding size, shared by history items and the target item.
        hidden: LSTM state size per direction.
        layers: stacked LSTM layers.
        bidirectional: also read the history backwards (`nnx.Bidirectional`).
        dropout: rate between LSTM layers and after the dense layer.
        dense: units of the ReLU layer.
        use_labels: the history carries whether each item was clicked (one more input feature).
        unroll: time steps per scan iteration (speed only).
        rngs: random streams for the init.
    """

    def __init__(
        self,
        num_embeddings: int,
        embed_dim: int,
        hidden: int,
        *,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        dense: int = 64,
        use_labels: bool = False,
        unroll: int = 1,
        rngs: nnx.Rngs,
    ) -> None:
        if layers < 1:
            raise ValueError(f"layers={layers}: expected at least 1")
        self.hidden = hidden
        self.bidirectional = bidirectional
        self.use_labels = use_labels
        self.embed = nnx.Embed(num_embeddings, embed_dim, rngs=rngs)
        directions = 2 if bidirectional else 1

        def rnn(in_features: int) -> nnx.RNN:
            # The zero initial carry is passed in each call, so the RNN holds no RNG state.
            return nnx.RNN(nnx.OptimizedLSTMCell(in_features, hidden, rngs=rngs), return_carry=True, unroll=unroll, rngs=False)

        encoders = []
        for layer in range(layers):
            in_features = embed_dim + int(use_labels) if layer == 0 else hidden * directions
            if bidirectional:
                encoders.append(nnx.Bidirectional(rnn(in_features), rnn(in_features), return_carry=True, rngs=False))
            else:
                encoders.append(rnn(in_features))
        self.encoders = nnx.List(encoders)
        self.dropout = nnx.Dropout(dropout)
        self.dense = nnx.Linear(hidden * directions + embed_dim, dense, rngs=rngs)
        self.out = nnx.Linear(dense, 1, rngs=rngs)

    def encode(self, history: jax.Array, lengths: jax.Array, history_clicks: jax.Array | None = None, *, key: jax.Array | None = None) -> jax.Array:
        """The history's final state, shape (batch, hidden * directions); zeros for an empty history."""
        x = self.embed(history)
        if self.use_labels:
            x = jnp.concatenate([x, history_clicks[..., None].astype(x.dtype)], axis=-1)
        zeros = jnp.zeros((history.shape[0], self.hidden), x.dtype)
        keys = jax.random.split(key, len(self.encoders)) if key is not None else [None] * len(self.encoders)
        for layer, encoder in enumerate(self.encoders):
            if layer > 0:
                x = self.dropout(x, deterministic=keys[layer] is None, rngs=keys[layer])
            if self.bidirectional:
                (forward, backward), x = encoder(x, initial_carry=((zeros, zeros), (zeros, zeros)), seq_lengths=lengths)
                state = jnp.concatenate([forward[1], backward[1]], axis=-1)  # each carry is (c, h)
            else:
                (_, state), x = encoder(x, initial_carry=(zeros, zeros), seq_lengths=lengths)
        # With length 0 the RNN's "last" carry is an arbitrary position: an empty history has no state.
        return jnp.where((lengths > 0)[:, None], state, 0.0)

    def __call__(
        self,
        history: jax.Array,
        lengths: jax.Array,
        items: jax.Array,
        history_clicks: jax.Array | None = None,
        *,
        key: jax.Array | None = None,
    ) -> jax.Array:
        """Click logits, shape (batch,). `key` turns dropout on (training); None is deterministic."""
        encode_key, dense_key = jax.random.split(key) if key is not None else (None, None)
        state = self.encode(history, lengths, history_clicks, key=encode_key)
        z = nnx.relu(self.dense(jnp.concatenate([state, self.embed(items)], axis=-1)))
        z = self.dropout(z, deterministic=dense_key is None, rngs=dense_key)
        return self.out(z)[:, 0]
