"""The smallest end-to-end jaxrnn program: an LSTM learns to continue a noisy sine wave.

Run: ``python -m experiments.quickstart``. Prints the loss falling; takes a few seconds.
"""

import jax
import jax.numpy as jnp
import optax

import jaxrnn


def make_batch(key, batch=64, steps=30):
    """Windows of sine waves with random phase and frequency: (b, t, 1) inputs, (b, 1) targets."""
    k_phase, k_freq, k_noise = jax.random.split(key, 3)
    phase = jax.random.uniform(k_phase, (batch, 1), maxval=2 * jnp.pi)
    freq = jax.random.uniform(k_freq, (batch, 1), minval=0.1, maxval=0.3)
    t = jnp.arange(steps + 1, dtype=jnp.float32)[None, :]
    wave = jnp.sin(phase + freq * t) + 0.01 * jax.random.normal(k_noise, (batch, steps + 1))
    return wave[:, :-1, None], wave[:, -1:]


def main(num_steps: int = 300) -> None:
    cell = jaxrnn.lstm(hidden_size=32)
    key_init, key_head, key_data = jax.random.split(jax.random.key(0), 3)
    params = {
        "rnn": cell.init(key_init, input_size=1),
        "head": 0.1 * jax.random.normal(key_head, (32, 1)),
    }
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(params)

    def loss_fn(params, xs, targets):
        last = jaxrnn.many_to_one(cell, params["rnn"], xs)  # (b, h): many-to-one
        return jnp.mean((last @ params["head"] - targets) ** 2)

    @jax.jit
    def train_step(params, opt_state, key):
        xs, targets = make_batch(key)
        loss, grads = jax.value_and_grad(loss_fn)(params, xs, targets)  # BPTT
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    for step, key in enumerate(jax.random.split(key_data, num_steps), start=1):
        params, opt_state, loss = train_step(params, opt_state, key)
        if step == 1 or step % 50 == 0:
            print(f"step {step:4d}  mse {float(loss):.5f}")


if __name__ == "__main__":
    main()
