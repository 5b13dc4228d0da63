"""LSTM click predictor: a user's recent items -> will they click this item?"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

POOLINGS = ("last", "mean", "attention", "last_attention")


class TargetAttention(nnx.Module):
    """DIN-style attention of the target item over a sequence (the LSTM's outputs, or item embeddings).

    Each position's weight comes from a small ReLU layer on `[h, q, h * q, h - q]`, where `h`
    is the position's vector and `q` the target's embedding projected to the same width; the
    weights are a softmax over the real positions. The pooled vector is the weighted sum of
    the positions: the part of the history that speaks about this target.

    Args:
        width: size of each position's vector.
        embed_dim: size of the target item's embedding.
        units: units of the ReLU layer that scores each position.
        rngs: random streams for the init.
    """

    def __init__(self, width: int, embed_dim: int, units: int, *, rngs: nnx.Rngs) -> None:
        self.query = nnx.Linear(embed_dim, width, rngs=rngs)
        self.hidden = nnx.Linear(4 * width, units, rngs=rngs)
        self.score = nnx.Linear(units, 1, rngs=rngs)

    def weights(self, outputs: jax.Array, mask: jax.Array, target: jax.Array) -> jax.Array:
        """Attention weights, shape (batch, time): zero at padding, all zero for an empty history."""
        q = jnp.broadcast_to(self.query(target)[:, None, :], outputs.shape)
        logits = self.score(nnx.relu(self.hidden(jnp.concatenate([outputs, q, outputs * q, outputs - q], axis=-1))))[..., 0]
        # A large finite negative rather than -inf: an empty history gets uniform weights, zeroed below, not NaNs.
        weights = jax.nn.softmax(jnp.where(mask, logits, -1e9), axis=-1)
        return jnp.where(mask, weights, 0.0)

    def __call__(self, outputs: jax.Array, mask: jax.Array, target: jax.Array) -> jax.Array:
        return jnp.einsum("bt,btd->bd", self.weights(outputs, mask, target), outputs)


def positions_mask(lengths: jax.Array, time: int) -> jax.Array:
    return jnp.arange(time)[None, :] < lengths[:, None]



class ClickLSTM(nnx.Module):
    """Item embedding -> LSTM over the history -> [pooled history, target embedding, item features] -> dense ReLU -> click logit,
    plus (optionally) a user-item affinity term read from a longer history.

    Histories are right-padded: positions `0..length-1` hold the items, oldest first.
    `nnx.RNN` receives the lengths (`seq_lengths`), so the final state of each direction
    is the one after the last real item, padded positions are masked out of every pooling,
    and nothing in a padded position reaches the output; an empty history pools to zeros.

    Pooling of the LSTM's outputs (`pooling`):
        last: the final state (of each direction).
        mean: the mean of the outputs over the real positions.
        attention: the target item's attention over the outputs (`TargetAttention`, DIN-style).
        last_attention: the final state and the attention-pooled outputs side by side.

    Branches over the longer history (`long_history`, the user's last `data.long_len` items;
    the LSTM's own history when none is given), both off by default in the module:
        affinity_dim > 0: a user vector, the sum over the history of an embedding of (item, clicked; with use_labels)
            divided by sqrt(length), dotted with the target's own affinity embedding and added to the
            logit (a learned item-item affinity, as in factored item similarity models).
        long_attention: the target's attention over the history's item embeddings and click flags;
            the pooled vector joins the dense layer.

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
        pooling: how the LSTM's outputs become one vector (see above).
        attention_units: units of the attention's scoring layer.
        num_features: width of the per-impression feature vector joining the dense layer (0: none).
        affinity_dim: size of the affinity embeddings (0: no affinity term).
        long_attention: attention of the target over the longer history's items.
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
        pooling: str = "last",
        attention_units: int = 32,
        num_features: int = 0,
        affinity_dim: int = 0,
        long_attention: bool = False,
        rngs: nnx.Rngs,
    ) -> None:
        if layers < 1:
            raise ValueError(f"layers={layers}: expected at least 1")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r}: expected one of {', '.join(POOLINGS)}")
        self.hidden = hidden
        self.bidirectional = bidirectional
        self.use_labels = use_labels
        self.pooling = pooling
        self.num_features = num_features
        self.embed = nnx.Embed(num_embeddings, embed_dim, rngs=rngs)
        directions = 2 if bidirectional else 1
        width = hidden * directions

        def rnn(in_features: int) -> nnx.RNN:
            # The zero initial carry is passed in each call, so the RNN holds no RNG state.
            return nnx.RNN(nnx.OptimizedLSTMCell(in_features, hidden, rngs=rngs), return_carry=True, unroll=unroll, rngs=False)

        encoders = []
        for layer in range(layers):
            in_features = embed_dim + int(use_labels) if layer == 0 else width
            if bidirectional:
                encoders.append(nnx.Bidirectional(rnn(in_features), rnn(in_features), return_carry=True, rngs=False))
            else:
                encoders.append(rnn(in_features))
        self.encoders = nnx.List(encoders)
        self.attention = TargetAttention(width, embed_dim, attention_units, rngs=rngs) if "attention" in pooling else None
        pooled = width * (2 if pooling == "last_attention" else 1)
        self.long_attention = TargetAttention(embed_dim + 1, embed_dim, attention_units, rngs=rngs) if long_attention else None
        pooled += embed_dim + 1 if long_attention else 0
        if affinity_dim > 0:
            init = nnx.initializers.normal(0.01)
            self.affinity_history = nnx.Embed(2 * num_embeddings, affinity_dim, embedding_init=init, rngs=rngs)  # (item, clicked)
            self.affinity_target = nnx.Embed(num_embeddings, affinity_dim, embedding_init=init, rngs=rngs)
        else:
            self.affinity_history = self.affinity_target = None
        self.dropout = nnx.Dropout(dropout)
        self.dense = nnx.Linear(pooled + embed_dim + num_features, dense, rngs=rngs)
        self.out = nnx.Linear(dense, 1, rngs=rngs)

    def sequence(
        self, history: jax.Array, lengths: jax.Array, history_clicks: jax.Array | None = None, *, key: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """(final state (batch, width), outputs (batch, time, width)) of the last layer; zero state for an empty history."""
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
        return jnp.where((lengths > 0)[:, None], state, 0.0), x

    def encode(self, history: jax.Array, lengths: jax.Array, history_clicks: jax.Array | None = None, *, key: jax.Array | None = None) -> jax.Array:
        """The history's final state, shape (batch, hidden * directions); zeros for an empty history."""
        return self.sequence(history, lengths, history_clicks, key=key)[0]

    def pool(self, state: jax.Array, outputs: jax.Array, lengths: jax.Array, target: jax.Array) -> jax.Array:
        """The LSTM's outputs as one vector for the target item (embedded as `target`), as `pooling` says."""
        if self.pooling == "last":
            return state
        mask = positions_mask(lengths, outputs.shape[1])
        if self.pooling == "mean":
            total = jnp.einsum("bt,btd->bd", mask.astype(outputs.dtype), outputs)
            return total / jnp.maximum(lengths, 1)[:, None].astype(outputs.dtype)
        attended = self.attention(outputs, mask, target)
        return attended if self.pooling == "attention" else jnp.concatenate([state, attended], axis=-1)

    def affinity(self, history: jax.Array, clicks: jax.Array, lengths: jax.Array, items: jax.Array) -> jax.Array:
        """The user-item affinity term, shape (batch,): sum_i P[item_i, clicked_i] / sqrt(length) . Q[target]."""
        mask = positions_mask(lengths, history.shape[1]).astype(jnp.float32)
        flags = (clicks > 0.5).astype(history.dtype) if self.use_labels else jnp.zeros_like(history)  # click flags only with use_labels
        rows = self.affinity_history(2 * history + flags)
        user = jnp.einsum("bt,btd->bd", mask, rows) / jnp.sqrt(jnp.maximum(lengths, 1))[:, None].astype(jnp.float32)
        return jnp.sum(user * self.affinity_target(items), axis=-1)

    def __call__(
        self,
        history: jax.Array,
        lengths: jax.Array,
        items: jax.Array,
        history_clicks: jax.Array | None = None,
        features: jax.Array | None = None,
        long_history: jax.Array | None = None,
        long_clicks: jax.Array | None = None,
        long_lengths: jax.Array | None = None,
        *,
        key: jax.Array | None = None,
    ) -> jax.Array:
        """Click logits, shape (batch,). `key` turns dropout on (training); None is deterministic.

        `long_history`, `long_clicks`, `long_lengths`: the longer history the affinity and long-attention
        branches read (the LSTM's history when None)."""
        return self.score_targets(history, lengths, [(items, features)], history_clicks, long_history, long_clicks, long_lengths,
                                  key=key)[0]

    def score_targets(
        self,
        history: jax.Array,
        lengths: jax.Array,
        targets: list[tuple[jax.Array, jax.Array | None]],
        history_clicks: jax.Array | None = None,
        long_history: jax.Array | None = None,
        long_clicks: jax.Array | None = None,
        long_lengths: jax.Array | None = None,
        *,
        key: jax.Array | None = None,
    ) -> list[jax.Array]:
        """Click logits (batch,) of several targets, `(items, features)` each, from one encoding of each history
        (a ranking loss scores a second item from the same history at little extra cost)."""
        keys = jax.random.split(key, 1 + len(targets)) if key is not None else [None] * (1 + len(targets))
        if history_clicks is None:
            history_clicks = jnp.zeros(history.shape, jnp.float32)
        if long_history is None:
            long_history, long_clicks, long_lengths = history, history_clicks, lengths
        state, outputs = self.sequence(history, lengths, history_clicks, key=keys[0])
        return [self._head(state, outputs, lengths, items, features, long_history, long_clicks, long_lengths, key=k)
                for (items, features), k in zip(targets, keys[1:])]

    def _head(self, state, outputs, lengths, items, features, long_history, long_clicks, long_lengths, *, key) -> jax.Array:
        target = self.embed(items)
        parts = [self.pool(state, outputs, lengths, target), target]
        if self.long_attention is not None:
            flags = long_clicks if self.use_labels else jnp.zeros_like(long_clicks)
            seen = jnp.concatenate([self.embed(long_history), flags[..., None].astype(target.dtype)], axis=-1)
            parts.append(self.long_attention(seen, positions_mask(long_lengths, long_history.shape[1]), target))
        if self.num_features:
            parts.append(features.astype(target.dtype))
        z = nnx.relu(self.dense(jnp.concatenate(parts, axis=-1)))
        z = self.dropout(z, deterministic=key is None, rngs=key)
        logits = self.out(z)[:, 0]
        if self.affinity_target is not None:
            logits = logits + self.affinity(long_history, long_clicks, long_lengths, items)
        return logits
