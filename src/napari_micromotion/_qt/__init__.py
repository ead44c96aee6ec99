"""napari widgets: thin Qt views over the analysis core.

Layout (the core never imports anything from here)::

    workbench.py         the main dock: tabs Data | ROIs | Analyze | Results | one per tool; overall progress
    inspector.py         the bottom dock: one region's traces beside the score and beat tables (linked)
    _state.py            one Session per viewer: the current Results, the recording they came from,
                         which layers hold the recording and the ROIs, selection and pixel inspection
    _tasks.py            background tasks: a core generator in a napari thread worker, progress bars
                         per stage, cancel, errors as notifications
    forms.py             parameter forms generated from the schema (tooltips from its help texts)
    recording_widget.py  Data tab: transmission/fluorescence layers or files, fps, pixel size, channel, sample
    rois_widget.py       ROIs tab: a shapes layer with a ``kind`` per shape, load and save
    analysis_widget.py   Analyze tab: methods and parameters, Run/Cancel, live loss plot
    results.py           Results tab: summary, layers, band-passed stack, export and import
    result_layers.py     result layers (updated by name), Qt-free apart from napari
    tool_tab.py          a tab per registered tool, from its schema
    plots.py             small live plots
    sample.py            the sample recording, simulated in a worker
    _files.py            (Qt-free) atomic CSV writing
    launch.py            ``micromotion view``: a viewer with a recording, ROIs, results and the workbench

Modules are imported by npe2 only when a widget is opened.
"""
