"""Small live plots for the workbench (matplotlib on Qt)."""

from __future__ import annotations

from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

__all__ = ["LossPlot"]


class LossPlot(QWidget):
    """The training loss of each network while it trains, one line per stage ("train cnn1d", "cnn3d <roi>")."""

    def __init__(self, parent: QWidget | None = None) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        super().__init__(parent)
        self.figure = Figure(figsize=(3, 1.2), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(110)
        self.canvas.setMaximumHeight(140)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.canvas)
        self.series: dict[str, list[float]] = {}
        #: the plot's title (a tool whose loss is not the usual one sets its own)
        self.title = "training loss (mean square error, z units)"
        self._last = 0.0
        self._pending = False
        self.reset()

    def reset(self) -> None:
        self.series = {}
        self._draw()

    def add(self, stage: str, loss: float) -> None:
        """Append one loss value of *stage* and redraw, at most every 0.3 s (shown at the first value)."""
        import time

        self.series.setdefault(stage, []).append(float(loss))
        self.setVisible(True)
        now = time.perf_counter()
        if now - self._last >= 0.3:
            self._last = now
            self._draw()
        elif not self._pending:
            from qtpy.QtCore import QTimer

            self._pending = True
            QTimer.singleShot(350, self._flush)

    def _flush(self) -> None:
        import time

        self._pending = False
        self._last = time.perf_counter()
        self._draw()

    def _draw(self) -> None:
        fig = self.figure
        fig.clear()
        ax = fig.add_subplot(1, 1, 1)
        for stage, values in self.series.items():
            ax.plot(range(1, len(values) + 1), values, lw=1, label=stage)
        ax.set_ylabel("loss", fontsize=7)
        ax.set_xlabel("updates reported", fontsize=7)
        ax.tick_params(labelsize=6)
        if self.series:
            ax.legend(fontsize=6, frameon=False, loc="upper right")
            ax.set_title(self.title, fontsize=7)
        self.canvas.draw_idle()
