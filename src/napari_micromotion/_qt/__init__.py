"""napari widgets: thin Qt views over the analysis core.

Layout (the core never imports anything from here)::

    _state.py            one Session per viewer: the current Results, the recording they came from,
                         which layers hold the recording and the ROIs
    _tasks.py            background tasks: a core generator in a napari thread worker, progress bars
                         per stage, cancel, errors as notifications
    _retrace.py          (Qt-free) ROI traces and scores for edited ROIs, from an existing result
    _files.py            (Qt-free) atomic CSV writing
    recording_widget.py  Recording: transmission/fluorescence layers or files, fps, pixel size, channel
    rois_widget.py       ROIs: a shapes layer with a ``kind`` per shape, load and save
    analysis_widget.py   Analysis: methods and parameters, Run/Cancel
    results.py           result layers (updated by name) and the Results widget
    traces_widget.py     Traces: per-ROI predictions against fluorescence (paper Fig. 4)
    score_table.py       Score table: score, lag and p-value per ROI and method
    launch.py            ``micromotion view``: a viewer with a recording, ROIs, results and all widgets

Modules are imported by npe2 only when a widget is opened.
"""
