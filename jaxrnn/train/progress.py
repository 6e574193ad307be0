"""`Progress`: the callback that shows how far `fit` is.

A tqdm bar in a terminal or a notebook; where none can be drawn (CI, output redirected) a
plain line per evaluation, or per tenth of the run without evaluation.
"""

import os
import sys

from tqdm import std as tqdm_std

from jaxrnn.train.callbacks import Callback


class Progress(Callback):
    """Shows progress: ``mode`` True draws a bar, False shows nothing, None decides (a bar
    where one can be drawn, else lines). ``name`` labels the bar and prefixes each line.

    Examples:
      >>> from jaxrnn.train import Progress
      >>> Progress(False, name="lstm").name
      'lstm'
    """

    def __init__(self, mode: bool | None = None, name: str | None = None):
        self.mode, self.name = mode, name
        self.bar = None
        self.lines = False

    def on_train_begin(self, loop, state):
        self.num_steps, self.evaluated = loop.num_steps, False
        self.line_every = max(1, loop.num_steps // 10)
        if self.mode or (self.mode is None and _can_draw_a_bar()):
            self.bar = _progress_bar(
                total=loop.num_steps, initial=loop.start, dynamic_ncols=True, unit="step",
                desc=self.name,
            )  # fmt: skip
        elif self.mode is None:
            self.lines = True

    def on_step_end(self, loop, step, state, metrics):
        if self.bar is None:
            if (
                self.lines
                and not loop.evaluates
                and (step % self.line_every == 0 or step == loop.num_steps)
            ):
                self._line(loop, step, {})
            return
        self.bar.update(1)
        train = _last(loop.history, "train")
        if train is not None and train["step"] == step:
            rate = self.bar.format_dict.get("rate") or 0.0
            self.bar.set_postfix(
                loss=f"{train['loss']:.4g}", ex_per_s=f"{rate * loop.batch_size:.0f}"
            )

    def on_evaluate(self, loop, step, state, metrics):
        if self.lines:
            self._line(loop, step, metrics)

    def on_train_end(self, loop, state):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _line(self, loop, step, val_metrics) -> None:
        train = _last(loop.history, "train")
        text = f"step {step}/{loop.num_steps}"
        if train is not None:
            text += f"  train loss {train['loss']:.4g}"
        if val_metrics:
            text += "  " + "  ".join(f"val {k} {v:.4g}" for k, v in val_metrics.items())
        text = f"{text}  ({loop.elapsed():.1f} s)"
        print(f"{self.name}: {text}" if self.name else text, flush=True)


def _progress_bar(**kwargs):
    """A widget bar in Jupyter when ipywidgets is installed, else a text bar.

    Chosen here rather than by `tqdm.auto`, which in a notebook without ipywidgets warns on
    import ("IProgress not found") into every notebook that imports `jaxrnn.train`.
    """
    if _in_notebook():
        try:
            import ipywidgets  # noqa: F401
            from tqdm import notebook as tqdm_notebook
        except ImportError:
            pass
        else:
            return tqdm_notebook.tqdm(**kwargs)
    return tqdm_std.tqdm(**kwargs)


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _can_draw_a_bar() -> bool:
    if os.environ.get("CI"):
        return False
    return sys.stderr.isatty() or _in_notebook()


def _last(history, split):
    return next((r for r in reversed(history) if r["split"] == split), None)
