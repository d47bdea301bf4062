"""Figure style and the one ``savefig`` every notebook uses.

* Sized for a paper column (``COLUMN`` = 3.4 in) or a full page width (``PAGE``).
* Okabe-Ito colour-blind-safe palette; one fixed colour per method.
* ``savefig(fig, name)`` writes ``name.pdf`` (vector) and ``name.png`` (raster)
  into :func:`hfmaml_core.paths.output_dir`, each atomically (temporary file,
  then rename) and with deterministic bytes (no creation date, no software
  stamp), and raises ``ValueError`` on misuse instead of warning.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import matplotlib as mpl
from matplotlib.figure import Figure

from . import methods, paths
from ._io import write_atomic

__all__ = [
    "COLUMN",
    "METHOD_COLORS",
    "PAGE",
    "PALETTE",
    "RC",
    "figure",
    "log_axes",
    "savefig",
    "use_style",
]

COLUMN = 3.4  # inches: one column of a two-column paper
PAGE = 7.0  # inches: full text width

#: Okabe & Ito (2008), safe for the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
#: Colour by method label, a view of the one method table (:mod:`hfmaml_core.methods`).
METHOD_COLORS = {m.label: m.color for m in methods.TABLE}

RC = {
    "figure.figsize": (COLUMN, COLUMN * 0.7),
    "figure.dpi": 110,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "legend.frameon": False,
    "mathtext.fontset": "cm",
    "pdf.fonttype": 42,
    "svg.hashsalt": "hfmaml",
}

# fontTools, which matplotlib uses to embed fonts in PDFs, logs a harmless warning about the
# font's "created" timestamp on every figure; keep its real errors only.
logging.getLogger("fontTools").setLevel(logging.ERROR)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


def use_style() -> None:
    """Apply the project's figure style to matplotlib's global settings."""
    mpl.rcParams.update(RC)


def figure(
    nrows: int = 1, ncols: int = 1, *, width: float = COLUMN, aspect: float = 0.7, **kwargs: object
):
    """``plt.subplots`` in the project style: ``width`` in inches, height = ``aspect * width``."""
    import matplotlib.pyplot as plt

    use_style()
    if not (width > 0 and aspect > 0):
        raise ValueError(f"width and aspect must be > 0; got width={width!r}, aspect={aspect!r}")
    return plt.subplots(nrows, ncols, figsize=(width, aspect * width), **kwargs)


def _has_content(fig: Figure) -> bool:
    for ax in fig.axes:
        if ax.lines or ax.collections or ax.images or ax.patches or ax.texts or ax.tables:
            return True
    return bool(fig.texts or fig.images)


def savefig(fig: Figure, name: str, *, dpi: int = 300) -> list[Path]:
    """Write ``fig`` as ``<name>.pdf`` and ``<name>.png`` into the output folder.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        A figure with at least one plotted artist.
    name : str
        File stem: lower-case letters, digits, ``_`` and ``-`` (no folder, no suffix).
    dpi : int
        Raster resolution of the PNG, 50 to 1200.

    Returns
    -------
    list of Path
        The PDF and PNG written.

    Raises
    ------
    ValueError
        If ``fig`` is not a Figure or has nothing drawn, ``name`` is not a bare
        file stem, or ``dpi`` is out of range. Nothing is written then.
    """
    if not isinstance(fig, Figure):
        raise ValueError(f"fig must be a matplotlib Figure; got {type(fig).__name__}")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            "name must be a bare file stem of lower-case letters, digits, '_' or '-' "
            f"(no folder, no suffix); got {name!r}"
        )
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 50 <= dpi <= 1200:
        raise ValueError(f"dpi must be an integer in [50, 1200]; got {dpi!r}")
    if not _has_content(fig):
        raise ValueError(f"figure {name!r} is empty: nothing is drawn on any of its axes")

    out = paths.output_dir()
    written = []
    for fmt, meta in (
        ("pdf", {"CreationDate": None, "Producer": None}),
        ("png", {"Software": None}),
    ):
        buf = io.BytesIO()
        with mpl.rc_context(RC):
            fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta)
        target = out / f"{name}.{fmt}"
        data = buf.getvalue()
        write_atomic(target, lambda fh, data=data: fh.write(data))
        written.append(target)
    _show_in_notebook(fig, data, dpi)
    return written


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (papermill, JupyterLab), False in scripts and tests."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _show_in_notebook(fig: Figure, png: bytes, dpi: int) -> None:
    """In a notebook, show the PNG just written and close ``fig``.

    The inline backend would otherwise draw the figure a third time at the end of the
    cell; showing the saved PNG (at the inline size) costs nothing and shows the reader
    exactly the file in ``figures/``.
    """
    if not _in_kernel():
        return
    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    width_px = int.from_bytes(png[16:20], "big")  # the PNG header's IHDR width
    display(Image(data=png, width=round(width_px * RC["figure.dpi"] / dpi)))
    plt.close(fig)


def log_axes(
    ax: object,
    xsubs: tuple[float, ...] | None = (1.0, 2.0, 5.0),
    ysubs: tuple[float, ...] | None = (1.0, 2.0, 5.0),
) -> None:
    """Log-log axes, the notebooks' one way.

    With ``xsubs``/``ysubs`` (mantissas, default 1, 2, 5): major ticks at
    ``subs × 10^k`` labelled as plain numbers (``0.02``, ``5e-5``), no minor labels.
    With ``None`` for an axis: matplotlib's decade ticks (``10^k``, at most 10 of them).
    """
    from matplotlib import ticker

    ax.set(xscale="log", yscale="log")
    for axis, subs in ((ax.xaxis, xsubs), (ax.yaxis, ysubs)):
        if subs is None:
            axis.set_major_locator(ticker.LogLocator(numticks=10))
            continue
        axis.set_major_locator(ticker.LogLocator(subs=subs))
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}".replace("e-0", "e-")))
        axis.set_minor_formatter(ticker.NullFormatter())
