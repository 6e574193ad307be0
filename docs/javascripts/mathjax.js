// MathJax settings: the formulas pymdownx.arithmatex marks in docstrings and pages (as \(...\)
// and \[...\]), and the $...$ / $$...$$ of the notebooks' markdown cells, which mkdocs-jupyter
// passes through as written. Code blocks are skipped, so a shell "$VAR" there stays as is.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
};

document$.subscribe(() => {
  MathJax.typesetPromise();
});
