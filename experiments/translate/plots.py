"""Attention heat maps of the translation model."""

from matplotlib.figure import Figure


def attention(path, weights, source_tokens, target_tokens) -> None:
    """Rows: English words produced; columns: Turkish words read; colour: attention weight."""
    fig = Figure(figsize=(2.5 + 0.6 * len(source_tokens), 1.2 + 0.45 * len(target_tokens)))
    ax = fig.subplots()
    image = ax.imshow(weights, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(image, ax=ax, label="attention weight (rows sum to 1)")
    ax.set_xticks(range(len(source_tokens)), source_tokens, rotation=45, ha="right")
    ax.set_yticks(range(len(target_tokens)), target_tokens)
    ax.set_xlabel("Turkish (source)")
    ax.set_ylabel("English (output)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
