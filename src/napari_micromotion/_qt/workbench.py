"""The workbench: one dock with a tab per step (Data, ROIs, Analyze, Results) and one per tool.

It docks the inspector (traces beside the score and beat tables) as a wide panel at the
bottom of the window, and shows the progress of whatever runs (the whole run, not only
its current stage) in a footer visible from every tab.  Every tab scrolls, so the
window fits a laptop screen with everything open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel, QProgressBar, QScrollArea, QTabWidget, QVBoxLayout, QWidget

from ._state import get_session, unwrap_viewer
from .inspector import INSPECTOR, dock_inspector

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["Workbench", "INSPECTOR", "dock_inspector"]

def _scrolled(widget: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setWidget(widget)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return area


class Workbench(QWidget):
    """Data -> ROIs -> Analyze -> Results, then one tab per registered tool."""

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None, *,
                 dock_bottom: bool = True) -> None:
        from ..tools import TOOLS
        from .analysis_widget import AnalysisWidget
        from .recording_widget import RecordingWidget
        from .results import ResultsWidget
        from .rois_widget import RoisWidget
        from .tool_tab import ToolTab

        super().__init__(parent)
        self.viewer = napari_viewer = unwrap_viewer(napari_viewer)
        self.session = get_session(napari_viewer)
        self.data = RecordingWidget(napari_viewer)
        self.rois = RoisWidget(napari_viewer)
        self.analysis = AnalysisWidget(napari_viewer)
        self.results = ResultsWidget(napari_viewer)
        self.tools = {t.name: ToolTab(napari_viewer, t) for t in TOOLS}
        self.tabs = QTabWidget()
        self.tabs.setUsesScrollButtons(True)
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(_scrolled(self.data), "Data")
        self.tabs.addTab(_scrolled(self.rois), "ROIs")
        self.tabs.addTab(self.analysis, "Analyze")   # scrolls its parameters itself; Run stays in view
        self.tabs.addTab(_scrolled(self.results), "Results")
        # every tool in one tab (a chooser on top): the tab bar fits a laptop's dock however many tools there are
        self.tool_panel = ToolsPanel(self.tools)
        if self.tools:
            self.tabs.addTab(self.tool_panel, "Tools")
        for i, tip in enumerate(("The recording: which layers, frame rate, pixel size; or the sample.",
                                 "Draw the cells to score, and their kinds.",
                                 "Choose methods and parameters; Run.",
                                 "Result layers, export, results folders.",
                                 "Tools on the recording: " + ", ".join(t.tool.label for t in self.tools.values())
                                 + ".")):
            if i < self.tabs.count():
                self.tabs.setTabToolTip(i, tip)
        self.overall = QProgressBar()
        self.overall.setRange(0, 1000)
        self.overall.setTextVisible(False)
        self.overall.setMaximumHeight(8)
        self.overall.setToolTip("Progress of the whole run.")
        self.footer = QLabel("Ready.")
        self.footer.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(self.overall)
        lay.addWidget(self.footer)
        self.setMinimumWidth(380)
        self.session.progressed.connect(self._on_progress)
        self.session.task_ended.connect(self._on_task_ended)
        self.analysis.finished_run.connect(lambda *_: self.tabs.setCurrentWidget(self.tabs.widget(3)))
        self.inspector = dock_inspector(napari_viewer) if dock_bottom else None
        napari_viewer.mouse_drag_callbacks.append(self._on_click)

    def _on_click(self, viewer: Any, event: Any) -> Any:
        """A click (not a drag) on an image layer traces that pixel in the inspector."""
        if event.type != "mouse_press" or getattr(event, "button", 1) != 1:
            return
        active = viewer.layers.selection.active
        if active is None or getattr(active, "_type_string", "") != "image" or self.session.results is None:
            return
        yield
        moved = False
        while event.type == "mouse_move":
            moved = True
            yield
        if not moved:
            self.inspect_world(event.position)

    def inspect_world(self, position: Any) -> Any:
        """Trace the pixel of the transmission layer under a world *position*; returns the task (or None)."""
        trans = self.session.transmission_layer()
        results = self.session.results
        if trans is None or results is None:
            return None
        data = trans.world_to_data(position)
        row, col = int(round(data[-2])), int(round(data[-1]))
        ny, nx = results.frame_shape
        if not (0 <= row < ny and 0 <= col < nx):
            return None
        return self.session.inspect_pixel(row, col)

    def _on_task_ended(self, text: str) -> None:
        self.overall.setValue(0)
        self.footer.setText(text)

    def _on_progress(self, event: Any) -> None:
        whole = event.overall if event.overall is not None else event.fraction
        self.overall.setValue(int(round(1000 * max(0.0, min(1.0, whole)))))
        text = f"{event.stage}: {event.message}" if event.message else event.stage
        if event.stage == "compiling kernels":
            text = event.message[:1].upper() + event.message[1:] + "..."
        self.footer.setText(text)

    def show_tab(self, name: str) -> None:
        """Bring the tab called *name* (``"Data"``, ``"ROIs"``, ``"Analyze"``, ``"Results"``, ``"Tools"``) forward;
        a tool's label or name (``"Motion"``, ``"blur_flow"``) opens the Tools tab on that tool."""
        for i in range(self.tabs.count()):
            if self.tabs.tabText(i).lower() == name.lower():
                self.tabs.setCurrentIndex(i)
                return
        if self.tool_panel.select(name):
            self.tabs.setCurrentWidget(self.tool_panel)
            return
        raise KeyError(name)

    @property
    def current_tab(self) -> str:
        """The tab in front: ``"Data"`` ... ``"Results"``, or the label of the tool shown in the Tools tab."""
        if self.tabs.currentWidget() is self.tool_panel:
            return self.tool_panel.current.tool.label
        return self.tabs.tabText(self.tabs.currentIndex())


class ToolsPanel(QWidget):
    """The Tools tab: a chooser of the registered tools above the chosen tool's form."""

    def __init__(self, tools: dict[str, Any]) -> None:
        super().__init__()
        from qtpy.QtWidgets import QComboBox, QHBoxLayout, QStackedWidget

        self.tools = tools
        self.chooser = QComboBox()
        self.stack = QStackedWidget()
        for i, tab in enumerate(tools.values()):
            self.chooser.addItem(tab.tool.label[:1].upper() + tab.tool.label[1:], tab.tool.name)
            self.chooser.setItemData(i, tab.tool.description, Qt.ItemDataRole.ToolTipRole)
            self.stack.addWidget(tab)
        self.chooser.setToolTip("Which tool: each has its own parameters, Run and results.")
        self.chooser.currentIndexChanged.connect(self.stack.setCurrentIndex)
        top = QHBoxLayout()
        top.setContentsMargins(6, 4, 6, 0)
        top.addWidget(QLabel("Tool"))
        top.addWidget(self.chooser, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.stack, 1)

    @property
    def current(self) -> Any:
        return self.stack.currentWidget()

    def select(self, name: str) -> bool:
        """Show the tool whose label or registry name is *name*; False when there is none."""
        key = name.lower().replace("_", " ")
        for i, tab in enumerate(self.tools.values()):
            if key in (tab.tool.label.lower(), tab.tool.name.lower().replace("_", " ")):
                self.chooser.setCurrentIndex(i)
                return True
        return False
